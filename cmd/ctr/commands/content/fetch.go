package content

import (
	gocontext "context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/remotes"
)

var fetchCommand = cli.Command{
	Name:      "fetch",
	Usage:     "Fetch all content for an image into containerd",
	ArgsUsage: "[flags] <remote>",
	Description: `Fetch an image's content (index, manifests, configs and layers) from
its registry into the content store, without unpacking it, and record the
image under its name.

By default the manifests and configs of every platform are fetched, and
the layers of this machine's platform only.`,
	Flags: append(commands.RegistryFlags[:len(commands.RegistryFlags):len(commands.RegistryFlags)],
		cli.StringSliceFlag{
			Name:  "label",
			Usage: "Labels to attach to the image",
		},
		cli.StringSliceFlag{
			Name:  "platform",
			Usage: "Pull content from a specific platform",
		},
		cli.BoolFlag{
			Name:  "all-platforms",
			Usage: "Pull content from all platforms",
		},
		cli.BoolFlag{
			Name:  "skip-metadata",
			Usage: "Skips metadata for unused platforms (Image may be unable to be pushed without metadata)",
		},
		cli.BoolFlag{
			Name:  "metadata-only",
			Usage: "Pull all metadata including manifests and configs",
		},
	),
	Action: func(context *cli.Context) error {
		ref := context.Args().First()
		if ref == "" {
			return errors.New("please provide an image reference to fetch")
		}
		matcher, allMetadata, err := fetchPlatforms(context)
		if err != nil {
			return err
		}
		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()
		resolver, err := commands.NewResolver(ctx, context)
		if err != nil {
			return err
		}
		var out io.Writer = commands.Stdout
		if context.GlobalBool("debug") {
			out = io.Discard // the log tells it all
		}
		img, err := fetch(ctx, c, resolver, ref, fetchConfig{
			matcher:     matcher,
			allMetadata: allMetadata,
			labels:      commands.LabelArgs(context.StringSlice("label")),
			progress:    out,
		})
		if err != nil {
			return err
		}
		log.G(ctx).WithField("image", img.Name).WithField("digest", img.Target.Digest).Debug("fetched")
		return nil
	},
}

// fetchPlatforms is what --platform, --all-platforms, --skip-metadata
// and --metadata-only ask for: the platforms whose layers are fetched,
// and whether the manifests and configs of the others are fetched too.
func fetchPlatforms(context *cli.Context) (platforms.MatchComparer, bool, error) {
	allMetadata := !context.Bool("skip-metadata")
	if context.Bool("metadata-only") {
		return platforms.Any(), true, nil // no platform's layers
	}
	if context.Bool("all-platforms") {
		return platforms.All, allMetadata, nil
	}
	names := context.StringSlice("platform")
	if len(names) == 0 {
		return platforms.Default(), allMetadata, nil
	}
	ps, err := platforms.ParseAll(names)
	if err != nil {
		return nil, false, fmt.Errorf("--platform: %w", err)
	}
	return platforms.Any(ps...), allMetadata, nil
}

type fetchConfig struct {
	matcher     platforms.MatchComparer
	allMetadata bool
	labels      map[string]string
	progress    io.Writer
}

// fetch resolves ref, copies what cfg selects of it into the content
// store under a lease, labelled so that the collector keeps children
// with their parents, and records the image (replacing the target and
// labels of one already of that name), which then keeps it all.
func fetch(ctx gocontext.Context, c *client.Client, resolver remotes.Resolver, ref string, cfg fetchConfig) (images.Image, error) {
	name, desc, err := resolver.Resolve(ctx, ref)
	if err != nil {
		return images.Image{}, fmt.Errorf("resolve %s: %w", ref, err)
	}
	fetcher, err := resolver.Fetcher(ctx, name)
	if err != nil {
		return images.Image{}, err
	}

	// Until the image record holds it, the content is held by a lease
	// that expires in a day, should ctr die before releasing it.
	ctx, release, err := c.WithLease(ctx)
	if err != nil {
		return images.Image{}, fmt.Errorf("create lease: %w", err)
	}
	defer func() {
		if err := release(ctx); err != nil && !errdefs.IsNotFound(err) {
			log.G(ctx).WithError(err).Warn("release lease")
		}
	}()

	cs := c.ContentStore()
	children := images.SetChildrenLabels(cs, images.ChildrenHandler(cs))
	if cfg.allMetadata {
		children = metadataOfOthers(children, cfg.matcher)
	} else {
		children = images.FilterPlatforms(children, cfg.matcher)
	}
	start := time.Now()
	p := &progress{out: cfg.progress, cs: cs, start: start}
	handler := images.Handlers(remotes.FetchHandler(cs, fetcher), p.handler(), children)
	if err := images.Dispatch(ctx, handler, nil, desc); err != nil {
		return images.Image{}, err
	}
	p.total()

	img := images.Image{Name: name, Target: desc, Labels: cfg.labels}
	is := c.ImageService()
	created, err := is.Create(ctx, img)
	if errdefs.IsAlreadyExists(err) {
		created, err = is.Update(ctx, img)
	}
	if err != nil {
		return images.Image{}, fmt.Errorf("record image %s: %w", name, err)
	}
	return created, nil
}

// metadataOfOthers wraps f so that a manifest for a platform m does not
// match yields its config alone: every platform's manifest and config are
// fetched, only the matching platforms' layers.
func metadataOfOthers(f images.HandlerFunc, m platforms.Matcher) images.HandlerFunc {
	return func(ctx gocontext.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := f(ctx, desc)
		if err != nil || !images.IsManifestType(desc.MediaType) || desc.Platform == nil || m.Match(*desc.Platform) {
			return children, err
		}
		var kept []ocispec.Descriptor
		for _, ch := range children {
			if images.IsConfigType(ch.MediaType) {
				kept = append(kept, ch)
			}
		}
		return kept, nil
	}
}

// progress prints a line per blob as it is done ("exists" for one that
// was there already) and a total at the end: the lines containerd's
// progress display ends with, without the live redrawing.
type progress struct {
	out   io.Writer
	cs    content.InfoProvider
	start time.Time

	mu    sync.Mutex
	bytes int64
}

// handler runs after the blob is fetched.
func (p *progress) handler() images.HandlerFunc {
	return func(ctx gocontext.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		status := "done"
		if info, err := p.cs.Info(ctx, desc.Digest); err == nil && info.CreatedAt.Before(p.start) {
			status = "exists"
		} else {
			p.mu.Lock()
			p.bytes += desc.Size
			p.mu.Unlock()
		}
		p.mu.Lock()
		fmt.Fprintf(p.out, "%s: %s\n", remotes.MakeRefKey(ctx, desc), status)
		p.mu.Unlock()
		return nil, nil
	}
}

func (p *progress) total() {
	elapsed := time.Since(p.start)
	fmt.Fprintf(p.out, "elapsed: %.1f s\ttotal: %s\t(%s/s)\n", elapsed.Seconds(), commands.HumanBytes(p.bytes),
		commands.HumanBytes(int64(float64(p.bytes)/elapsed.Seconds())))
}
