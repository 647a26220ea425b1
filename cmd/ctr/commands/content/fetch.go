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
		opts := []client.RemoteOpt{
			client.WithResolver(resolver),
			client.WithPlatformMatcher(matcher),
			client.WithPullLabels(commands.LabelArgs(context.StringSlice("label"))),
		}
		if allMetadata {
			opts = append(opts, client.WithAllMetadata())
		}
		p := &progress{out: out, cs: c.ContentStore(), start: time.Now()}
		img, err := c.Fetch(ctx, ref, append(opts, client.WithImageHandlerWrapper(p.wrap))...)
		if err != nil {
			return err
		}
		p.total()
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

// wrap prints a line for each blob once the handler has fetched it.
func (p *progress) wrap(h images.Handler) images.Handler {
	return images.HandlerFunc(func(ctx gocontext.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := h.Handle(ctx, desc)
		if err != nil {
			return nil, err
		}
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
		return children, nil
	})
}

func (p *progress) total() {
	elapsed := time.Since(p.start)
	fmt.Fprintf(p.out, "elapsed: %.1f s\ttotal: %s\t(%s/s)\n", elapsed.Seconds(), commands.HumanBytes(p.bytes),
		commands.HumanBytes(int64(float64(p.bytes)/elapsed.Seconds())))
}
