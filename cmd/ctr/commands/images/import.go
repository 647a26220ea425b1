package images

import (
	gocontext "context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/images/archive"
	"github.com/llitfkitfk/containerd/transfer"
	tarchive "github.com/llitfkitfk/containerd/transfer/archive"
	"github.com/llitfkitfk/containerd/transfer/image"
)

var importCommand = cli.Command{
	Name:      "import",
	Usage:     "Import images",
	ArgsUsage: "[flags] <in>",
	Description: `Import images from a tar stream.
Implemented formats:
- oci.v1
- docker.v1.1
- docker.v1.2


For OCI v1, you may need to specify --base-name because an OCI archive may
contain only partial image references (tags without the base image name).
If no base image name is provided, a name will be generated as "import-%{yyyy-MM-dd}".

e.g.
  $ ctr images import --base-name foo/bar foobar.tar

If foobar.tar contains an OCI ref named "latest" and anonymous ref "sha256:deadbeef", the command will create
"foo/bar:latest" and "foo/bar@sha256:deadbeef" images in the containerd store.
`,
	Flags: []cli.Flag{
		cli.StringFlag{Name: "base-name", Usage: "Base image name for added images, when provided only images with this name prefix are imported"},
		cli.BoolFlag{Name: "digests", Usage: "Whether to create digest images (default: false)"},
		cli.BoolFlag{Name: "skip-digest-for-named", Usage: "Skip applying --digests option to images named in the importing tar (use it in conjunction with --digests)"},
		cli.StringFlag{Name: "index-name", Usage: "Image name to keep index as, by default index is discarded"},
		cli.BoolFlag{Name: "all-platforms", Usage: "Imports content for all platforms, false by default"},
		cli.StringFlag{Name: "platform", Usage: "Imports content for specific platform"},
		cli.BoolFlag{Name: "no-unpack", Usage: "Skip unpacking the images, false by default"},
		cli.BoolFlag{Name: "local", Usage: "Run import locally rather than through transfer API"},
		cli.BoolFlag{Name: "compress-blobs", Usage: "Compress uncompressed blobs when creating manifest (Docker format only)"},
		commands.SnapshotterFlag,
		labelFlag,
	},
	Action: func(context *cli.Context) error {
		in := context.Args().First()
		if in == "" {
			return errors.New("please provide an archive to import (\"-\" for stdin)")
		}
		if context.NArg() > 1 {
			return fmt.Errorf("import takes one archive, got %d arguments", context.NArg())
		}
		if context.Bool("skip-digest-for-named") && !context.Bool("digests") {
			return errors.New("--skip-digest-for-named must be specified with --digests option")
		}
		platUnpack := platforms.DefaultSpec()
		if p := context.String("platform"); p != "" {
			var err error
			if platUnpack, err = platforms.Parse(p); err != nil {
				return err
			}
		}

		var r io.ReadCloser = os.Stdin
		if in != "-" {
			f, err := os.Open(in)
			if err != nil {
				return err
			}
			r = f
		}
		defer r.Close()

		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()

		if !context.Bool("local") {
			counted := &countingReader{r: r}
			err := importTransfer(ctx, context, c, counted, platUnpack)
			if !noTransferService(ctx, err) {
				return err
			}
			// The daemon said so before it asked for the archive; should
			// it not have, the bytes it took cannot be read again.
			if n := counted.n.Load(); n > 0 {
				return fmt.Errorf("the daemon has no transfer service and took %d bytes of the archive first: %w", n, err)
			}
		}
		return importLocal(ctx, context, c, r)
	},
}

// importTransfer imports through the daemon's transfer service, as
// containerd 2.x's ctr: images are named from the archive under
// --base-name (import-<date> by default, which the archive's full names
// may override), and the chosen platform (the default one unless
// --all-platforms) is unpacked unless --no-unpack.
func importTransfer(ctx gocontext.Context, context *cli.Context, c *client.Client, r io.Reader, platUnpack ocispec.Platform) error {
	prefix, overwrite := context.String("base-name"), false
	if prefix == "" {
		prefix, overwrite = "import-"+time.Now().Format("2006-01-02"), true
	}
	var sopts []image.StoreOpt
	if labels := labelArgs(context.StringSlice("label")); labels != nil {
		sopts = append(sopts, image.WithImageLabels(labels))
	}
	if context.Bool("digests") {
		sopts = append(sopts, image.WithDigestRef(prefix, overwrite, context.Bool("skip-digest-for-named")))
	} else {
		sopts = append(sopts, image.WithNamedPrefix(prefix, overwrite))
	}
	if !context.Bool("all-platforms") {
		sopts = append(sopts, image.WithPlatforms(platUnpack))
	}
	if !context.Bool("no-unpack") {
		sopts = append(sopts, image.WithUnpack(platUnpack, context.String("snapshotter")))
	}
	var iopts []tarchive.ImportOpt
	if context.Bool("compress-blobs") {
		iopts = append(iopts, tarchive.WithForceCompression)
	}
	pf, done := ProgressHandler(ctx, commands.Stdout)
	defer done()
	return c.Transfer(ctx, tarchive.NewImageImportStream(r, "", iopts...), image.NewStore(context.String("index-name"), sopts...), transfer.WithProgress(pf))
}

// importLocal imports through the client itself, then unpacks each image
// for the chosen platform, printing as containerd's ctr does.
func importLocal(ctx gocontext.Context, context *cli.Context, c *client.Client, r io.Reader) error {
	ctx, release, err := c.WithLease(ctx)
	if err != nil {
		return err
	}
	defer release(ctx)

	prefix := context.String("base-name")
	var translate func(string) string
	if prefix == "" {
		prefix = "import-" + time.Now().Format("2006-01-02")
		translate = archive.AddRefPrefix(prefix)
	} else {
		// Only the images named under the prefix are kept.
		translate = archive.FilterRefPrefix(prefix)
	}
	var matcher platforms.MatchComparer
	if p := context.String("platform"); p != "" {
		spec, err := platforms.Parse(p)
		if err != nil {
			return err
		}
		matcher = platforms.OnlyStrict(spec)
	}
	imgs, err := c.Import(ctx, r, func(ic *client.ImportConfig) error {
		ic.ImageRefTranslator = translate
		if context.Bool("digests") {
			ic.DigestRef = func(d digest.Digest) string { return prefix + "@" + d.String() }
		}
		if context.Bool("skip-digest-for-named") {
			ic.SkipDigestRef = func(name string) bool { return name != "" }
		}
		ic.IndexName = context.String("index-name")
		ic.AllPlatforms = context.Bool("all-platforms")
		ic.PlatformMatcher = matcher
		ic.Compress = context.Bool("compress-blobs")
		ic.Labels = labelArgs(context.StringSlice("label"))
		return nil
	})
	if err != nil {
		return err
	}
	if context.Bool("no-unpack") {
		return nil
	}
	if matcher == nil {
		matcher = platforms.DefaultStrict()
	}
	for _, img := range imgs {
		fmt.Fprintf(commands.Stdout, "unpacking %s (%s)...", img.Name, img.Target.Digest)
		if err := client.NewImageWithPlatform(c, img, matcher).Unpack(ctx, context.String("snapshotter")); err != nil {
			fmt.Fprintln(commands.Stdout)
			return err
		}
		fmt.Fprintln(commands.Stdout, "done")
	}
	return nil
}

// countingReader counts the bytes read through it (by the transfer's
// sender, while the command waits).
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (cr *countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.n.Add(int64(n))
	return n, err
}
