package images

import (
	gocontext "context"
	"errors"
	"fmt"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/transfer"
	"github.com/llitfkitfk/containerd/transfer/image"
)

var pushCommand = cli.Command{
	Name:      "push",
	Usage:     "Push an image to a remote",
	ArgsUsage: "[flags] <remote> [<local>]",
	Description: `Pushes an image reference from containerd.

	All resources associated with the manifest reference will be pushed.
	The ref is used to resolve to a locally existing image manifest.
	The image manifest must exist before push. Creating a new image
	manifest can be done through calculating the diff for layers,
	creating the associated configuration, and creating the manifest
	which references those resources.
`,
	Flags: append(append([]cli.Flag{}, commands.RegistryFlags...),
		cli.StringFlag{Name: "manifest", Usage: "Digest of manifest"},
		cli.StringFlag{Name: "manifest-type", Usage: "Media type of manifest digest", Value: ocispec.MediaTypeImageManifest},
		cli.StringSliceFlag{Name: "platform", Usage: "Push content from a specific platform"},
		cli.IntFlag{Name: "max-concurrent-uploaded-layers", Usage: "Set the max concurrent uploaded layers for each push"},
		cli.BoolFlag{Name: "local", Usage: "Push content from local client rather than using transfer service"},
	),
	Action: func(context *cli.Context) error {
		ref, local := context.Args().First(), context.Args().Get(1)
		if ref == "" {
			return errors.New("please provide a remote image reference to push")
		}
		if context.NArg() > 2 {
			return fmt.Errorf("push takes a remote and a local reference, got %d arguments", context.NArg())
		}
		if local == "" {
			local = ref
		}
		plats, err := platforms.ParseAll(context.StringSlice("platform"))
		if err != nil {
			return fmt.Errorf("invalid platform %v: %w", context.StringSlice("platform"), err)
		}
		var manifest digest.Digest
		if m := context.String("manifest"); m != "" {
			if manifest, err = digest.Parse(m); err != nil {
				return fmt.Errorf("invalid manifest digest: %w", err)
			}
		}
		if err := requireLocal(context, "manifest", "manifest-type", "max-concurrent-uploaded-layers", "skip-verify", "tlscacert", "tlscert", "tlskey"); err != nil {
			return err
		}

		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()

		if !context.Bool("local") {
			reg, err := newRegistry(context, ref)
			if err != nil {
				return err
			}
			pf, done := ProgressHandler(ctx, commands.Stdout)
			err = c.Transfer(ctx, image.NewStore(local, image.WithPlatforms(plats...)), reg, transfer.WithProgress(pf))
			done()
			if !noTransferService(ctx, err) {
				return err
			}
		}
		return pushLocal(ctx, context, c, ref, local, manifest, plats)
	},
}

// pushLocal pushes through the client itself: the image's target, or the
// manifest named by --manifest, or with one --platform that platform's
// manifest of the image's index.
func pushLocal(ctx gocontext.Context, context *cli.Context, c *client.Client, ref, local string, manifest digest.Digest, plats []ocispec.Platform) error {
	ctx, release, err := c.WithLease(ctx)
	if err != nil {
		return err
	}
	defer release(ctx)

	var desc ocispec.Descriptor
	if manifest != "" {
		desc = ocispec.Descriptor{Digest: manifest, MediaType: context.String("manifest-type")}
		info, err := c.ContentStore().Info(ctx, manifest)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", manifest, err)
		}
		desc.Size = info.Size
	} else {
		img, err := c.ImageService().Get(ctx, local)
		if err != nil {
			return fmt.Errorf("unable to resolve image to manifest: %w", err)
		}
		desc = img.Target
		if len(plats) == 1 {
			if desc, err = platformManifest(ctx, c, desc, plats[0]); err != nil {
				return err
			}
		}
	}
	resolver, err := commands.NewResolver(ctx, context)
	if err != nil {
		return err
	}
	var matcher platforms.MatchComparer = platforms.All
	if len(plats) > 0 {
		matcher = platforms.Ordered(plats...)
	}
	return c.Push(ctx, ref, desc, func(_ *client.Client, rc *client.RemoteContext) error {
		rc.Resolver = resolver
		rc.PlatformMatcher = matcher
		rc.MaxConcurrentUploads = context.Int("max-concurrent-uploaded-layers")
		return nil
	})
}

// platformManifest is the manifest for p of index desc; desc itself when
// it is not an index.
func platformManifest(ctx gocontext.Context, c *client.Client, desc ocispec.Descriptor, p ocispec.Platform) (ocispec.Descriptor, error) {
	if !images.IsIndexType(desc.MediaType) {
		return desc, nil
	}
	children, err := images.Children(ctx, c.ContentStore(), desc)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	m := platforms.NewMatcher(p)
	for _, child := range children {
		if child.Platform != nil && m.Match(*child.Platform) {
			return child, nil
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("no manifest for platform %s in %s", platforms.Format(p), desc.Digest)
}
