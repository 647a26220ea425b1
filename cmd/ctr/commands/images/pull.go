package images

import (
	gocontext "context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/platforms"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/transfer"
	"github.com/llitfkitfk/containerd/transfer/image"
)

var pullCommand = cli.Command{
	Name:      "pull",
	Usage:     "Pull an image from a remote",
	ArgsUsage: "[flags] <ref>",
	Description: `Fetch and prepare an image for use in containerd.

After pulling an image, it should be ready to use the same reference in a run
command. As part of this process, we do the following:

1. Fetch all resources into containerd.
2. Prepare the snapshot filesystem with the pulled resources.
3. Register metadata for the image.
`,
	Flags: append(append([]cli.Flag{}, commands.RegistryFlags...),
		commands.SnapshotterFlag,
		labelFlag,
		cli.StringSliceFlag{Name: "platform", Usage: "Pull content from a specific platform"},
		cli.BoolFlag{Name: "all-platforms", Usage: "Pull content and metadata from all platforms"},
		cli.BoolFlag{Name: "all-metadata", Usage: "(Deprecated: use skip-metadata) Pull metadata for all platforms", Hidden: true},
		cli.BoolFlag{Name: "skip-metadata", Usage: "Skips metadata for unused platforms (Image may be unable to be pushed without metadata)"},
		cli.BoolFlag{Name: "print-chainid", Usage: "Print the resulting image's chain ID"},
		cli.IntFlag{Name: "max-concurrent-downloads", Usage: "Set the max concurrent downloads for each pull"},
		cli.BoolFlag{Name: "local", Usage: "Fetch content from local client rather than using transfer service"},
	),
	Action: func(context *cli.Context) error {
		ref := context.Args().First()
		if ref == "" {
			return errors.New("please provide an image reference to pull")
		}
		if context.NArg() > 1 {
			return fmt.Errorf("pull takes one image reference, got %d arguments", context.NArg())
		}
		plats, err := platforms.ParseAll(context.StringSlice("platform"))
		if err != nil {
			return err
		}
		if len(plats) > 0 && context.Bool("all-platforms") {
			return errors.New("cannot specify both --platform and --all-platforms")
		}
		if context.IsSet("max-concurrent-downloads") && context.Int("max-concurrent-downloads") < 0 {
			return errors.New("--max-concurrent-downloads must not be negative")
		}
		if err := requireLocal(context, "max-concurrent-downloads", "print-chainid", "skip-verify", "tlscacert", "tlscert", "tlskey"); err != nil {
			return err
		}

		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()

		if !context.Bool("local") {
			err := pullTransfer(ctx, context, c, ref, plats)
			if !noTransferService(ctx, err) {
				return err
			}
		}
		return pullLocal(ctx, context, c, ref, plats)
	},
}

// pullTransfer pulls through the daemon's transfer service, as containerd
// 2.x's ctr: the platforms asked for (the default one if none, all with
// --all-platforms) are fetched and unpacked, with the metadata of all the
// others unless --skip-metadata.
func pullTransfer(ctx gocontext.Context, context *cli.Context, c *client.Client, ref string, plats []ocispec.Platform) error {
	reg, err := newRegistry(context, ref)
	if err != nil {
		return err
	}
	if len(plats) == 0 && !context.Bool("all-platforms") {
		spec := platforms.DefaultSpec()
		if spec.OS == "darwin" {
			spec.OS = "linux" // images are unpacked for Linux there too
		}
		plats = []ocispec.Platform{spec}
	}
	// No platforms is all of them.
	sopts := []image.StoreOpt{image.WithPlatforms(plats...)}
	for _, p := range plats {
		sopts = append(sopts, image.WithUnpack(p, context.String("snapshotter")))
	}
	if !context.Bool("skip-metadata") {
		sopts = append(sopts, image.WithAllMetadata)
	}
	if labels := labelArgs(context.StringSlice("label")); labels != nil {
		sopts = append(sopts, image.WithImageLabels(labels))
	}
	pf, done := ProgressHandler(ctx, commands.Stdout)
	defer done()
	return c.Transfer(ctx, reg, image.NewStore(ref, sopts...), transfer.WithProgress(pf))
}

// pullLocal fetches through the client itself, showing its progress as a
// pull through the daemon shows, then unpacks each platform asked for,
// printing what it unpacks as containerd's ctr does.
func pullLocal(ctx gocontext.Context, context *cli.Context, c *client.Client, ref string, plats []ocispec.Platform) error {
	ctx, release, err := c.WithLease(ctx)
	if err != nil {
		return err
	}
	defer release(ctx)

	resolver, err := commands.NewResolver(ctx, context)
	if err != nil {
		return err
	}
	var matcher platforms.MatchComparer
	switch {
	case context.Bool("all-platforms"):
		matcher = platforms.All
	case len(plats) > 0:
		matcher = platforms.Ordered(plats...)
	default:
		matcher = platforms.Default()
	}
	labels := labelArgs(context.StringSlice("label"))
	pf, done := ProgressHandler(ctx, commands.Stdout)
	pf(transfer.Progress{Event: "Fetching " + ref})
	track, stopTracking := fetchProgress(ctx, c.ContentStore(), ref, pf)
	img, err := c.Pull(ctx, ref, func(_ *client.Client, rc *client.RemoteContext) error {
		rc.Resolver = resolver
		rc.PlatformMatcher = matcher
		rc.Labels = labels
		rc.AllMetadata = context.Bool("all-metadata")
		rc.MaxConcurrentDownloads = context.Int("max-concurrent-downloads")
		rc.BaseHandlers = append(rc.BaseHandlers, track)
		return nil
	})
	stopTracking()
	if err == nil {
		pf(transfer.Progress{Event: "Fetched " + ref})
	}
	done()
	if err != nil {
		return err
	}

	if context.Bool("all-platforms") {
		plats, err = images.Platforms(ctx, c.ContentStore(), img.Target())
		if err != nil {
			return fmt.Errorf("unable to resolve image platforms: %w", err)
		}
	}
	if len(plats) == 0 {
		plats = []ocispec.Platform{platforms.DefaultSpec()}
	}
	start := time.Now()
	for _, p := range plats {
		fmt.Fprintf(commands.Stdout, "unpacking %s %s...\n", platforms.Format(p), img.Target().Digest)
		i := client.NewImageWithPlatform(c, img.Metadata(), platforms.Only(p))
		if err := i.Unpack(ctx, context.String("snapshotter")); err != nil {
			return err
		}
		if context.Bool("print-chainid") {
			diffIDs, err := i.RootFS(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(commands.Stdout, "image chain ID: %s\n", identity.ChainID(diffIDs))
		}
	}
	fmt.Fprintf(commands.Stdout, "done: %s\t\n", time.Since(start))
	return nil
}
