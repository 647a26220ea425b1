package images

import (
	gocontext "context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/images/archive"
	"github.com/llitfkitfk/containerd/transfer"
	tarchive "github.com/llitfkitfk/containerd/transfer/archive"
	"github.com/llitfkitfk/containerd/transfer/image"
)

var exportCommand = cli.Command{
	Name:      "export",
	Usage:     "Export images",
	ArgsUsage: "[flags] <out> <image> ...",
	Description: `Export images to an OCI tar archive.

Tar output is formatted as an OCI archive, a Docker manifest is provided for the platform.
Use '--skip-manifest-json' to avoid including the Docker manifest.json file.
Use '--platform' to define the output platform.
When '--all-platforms' is given all images in a manifest list must be available.
`,
	Flags: []cli.Flag{
		cli.BoolFlag{Name: "skip-manifest-json", Usage: "Do not add Docker compatible manifest.json to archive"},
		cli.BoolFlag{Name: "skip-non-distributable", Usage: "Do not add non-distributable blobs such as Windows layers to archive"},
		cli.StringSliceFlag{Name: "platform", Usage: "Pull content from a specific platform"},
		cli.BoolFlag{Name: "all-platforms", Usage: "Exports content from all platforms"},
		cli.BoolFlag{Name: "local", Usage: "Run export locally rather than through transfer API"},
	},
	Action: func(context *cli.Context) error {
		out, names := context.Args().First(), context.Args().Tail()
		if out == "" || len(names) == 0 {
			return errors.New("please provide both an output filename and an image reference to export")
		}
		plats, err := platforms.ParseAll(context.StringSlice("platform"))
		if err != nil {
			return err
		}
		if context.Bool("skip-non-distributable") && context.Bool("local") {
			// images/archive keeps every blob it is given.
			return errors.New("--skip-non-distributable is not supported with --local")
		}

		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()

		// The archive goes to stdout with "-"; progress then goes to
		// stderr so as not to corrupt it.
		var w io.WriteCloser = nopCloser{os.Stdout}
		progressOut := commands.Stdout
		if out == "-" {
			progressOut = os.Stderr
		} else {
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			w = f
		}
		defer w.Close()

		err = func() error {
			if !context.Bool("local") {
				err := exportTransfer(ctx, context, c, w, progressOut, names, plats)
				if !noTransferService(ctx, err) {
					return err
				}
			}
			if err := exportLocal(ctx, context, c, w, names, plats); err != nil {
				return err
			}
			return w.Close()
		}()
		// A failed export leaves no partial archive that could pass for
		// one.
		if err != nil && out != "-" {
			w.Close()
			os.Remove(out)
		}
		return err
	},
}

// exportTransfer exports through the daemon's transfer service, as
// containerd 2.x's ctr; the archive arrives on a byte stream and is
// written to w, which the transfer closes.
func exportTransfer(ctx gocontext.Context, context *cli.Context, c *client.Client, w io.WriteCloser, progressOut io.Writer, names []string, plats []ocispec.Platform) error {
	var eopts []tarchive.ExportOpt
	for _, p := range plats {
		eopts = append(eopts, tarchive.WithPlatform(p))
	}
	if context.Bool("all-platforms") {
		eopts = append(eopts, tarchive.WithAllPlatforms)
	}
	if context.Bool("skip-manifest-json") {
		eopts = append(eopts, tarchive.WithSkipCompatibilityManifest)
	}
	if context.Bool("skip-non-distributable") {
		eopts = append(eopts, tarchive.WithSkipNonDistributableBlobs)
	}
	sopts := make([]image.StoreOpt, len(names))
	for i, name := range names {
		sopts[i] = image.WithExtraReference(name)
	}
	pf, done := ProgressHandler(ctx, progressOut)
	defer done()
	return c.Transfer(ctx, image.NewStore("", sopts...), tarchive.NewImageExportStream(w, "", eopts...), transfer.WithProgress(pf))
}

// exportLocal exports through the client itself.
func exportLocal(ctx gocontext.Context, context *cli.Context, c *client.Client, w io.Writer, names []string, plats []ocispec.Platform) error {
	var opts []archive.ExportOpt
	if len(plats) > 0 {
		opts = append(opts, archive.WithPlatform(platforms.Ordered(plats...)))
	} else {
		opts = append(opts, archive.WithPlatform(platforms.DefaultStrict()))
	}
	if context.Bool("all-platforms") {
		opts = append(opts, archive.WithAllPlatforms())
	}
	if context.Bool("skip-manifest-json") {
		opts = append(opts, archive.WithSkipDockerManifest())
	}
	is := c.ImageService()
	for _, name := range names {
		opts = append(opts, archive.WithImage(is, name))
	}
	if err := c.Export(ctx, w, opts...); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// nopCloser keeps the transfer from closing stdout.
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
