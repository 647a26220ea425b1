package snapshots

import (
	gocontext "context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/snapshots"
)

var diffCommand = cli.Command{
	Name:      "diff",
	Usage:     "Get the diff of two snapshots. the default second snapshot is the first snapshot's parent.",
	ArgsUsage: "[flags] <idA> [<idB>]",
	Description: `Write the layer of the changes from <idB> (by default <idA>'s parent)
to <idA> to stdout. The daemon's differ makes it into the content store;
it is removed with the command's lease unless --keep is given.`,
	Flags: []cli.Flag{
		cli.StringFlag{
			Name:  "media-type",
			Usage: "Media type to use for creating diff",
			Value: ocispec.MediaTypeImageLayerGzip,
		},
		cli.StringFlag{
			Name:  "ref",
			Usage: "Content upload reference to use",
		},
		cli.BoolFlag{
			Name:  "keep",
			Usage: "Keep diff content. up to creator to delete it.",
		},
		cli.StringSliceFlag{
			Name:  "label",
			Usage: "Labels to attach to the diff content",
		},
	},
	Action: func(context *cli.Context) error {
		idA, idB := context.Args().First(), context.Args().Get(1)
		if idA == "" {
			return errors.New("snapshot id must be provided")
		}
		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()
		ctx, done, err := c.WithLease(ctx)
		if err != nil {
			return err
		}
		defer done(ctx)

		labels := commands.LabelArgs(context.StringSlice("label"))
		if context.Bool("keep") {
			labels["containerd.io/gc.root"] = time.Now().UTC().Format(time.RFC3339)
		}
		opts := []diff.Opt{
			diff.WithMediaType(context.String("media-type")),
			diff.WithReference(context.String("ref")),
			diff.WithLabels(labels),
		}
		sn := c.SnapshotService(context.GlobalString("snapshotter"))
		differ := c.DiffService()
		compare := func(lower []mount.Mount) (ocispec.Descriptor, error) {
			return withMounts(ctx, sn, idA, func(upper []mount.Mount) (ocispec.Descriptor, error) {
				return differ.Compare(ctx, lower, upper, opts...)
			})
		}
		var desc ocispec.Descriptor
		if idB != "" {
			desc, err = withMounts(ctx, sn, idB, compare)
		} else {
			info, serr := sn.Stat(ctx, idA)
			if serr != nil {
				return serr
			}
			if info.Parent == "" {
				desc, err = compare(nil) // a first layer: everything
			} else {
				desc, err = withMounts(ctx, sn, info.Parent, compare)
			}
		}
		if err != nil {
			return err
		}
		ra, err := c.ContentStore().ReaderAt(ctx, desc)
		if err != nil {
			return err
		}
		defer ra.Close()
		_, err = io.Copy(commands.Stdout, content.NewReader(ra))
		return err
	},
}

// withMounts calls f with the mounts of snapshot key: its own if it is
// active, else those of a view made on it for the call.
func withMounts(ctx gocontext.Context, sn snapshots.Snapshotter, key string, f func([]mount.Mount) (ocispec.Descriptor, error)) (ocispec.Descriptor, error) {
	info, err := sn.Stat(ctx, key)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if info.Kind == snapshots.KindActive {
		mounts, err := sn.Mounts(ctx, key)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		return f(mounts)
	}
	var unique [8]byte
	rand.Read(unique[:])
	view := fmt.Sprintf("%s-view-%s", key, hex.EncodeToString(unique[:]))
	mounts, err := sn.View(ctx, view, key)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer func() {
		if err := sn.Remove(ctx, view); err != nil {
			log.G(ctx).WithError(err).WithField("view", view).Warn("remove view")
		}
	}()
	return f(mounts)
}
