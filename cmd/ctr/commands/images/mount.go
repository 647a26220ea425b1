package images

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/containerd/platforms"
	"github.com/opencontainers/image-spec/identity"
	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/mount"
)

// mountLeaseExpiry is how long a mount's lease keeps its snapshot if
// nobody unmounts it with --rm.
const mountLeaseExpiry = 24 * time.Hour

var mountCommand = cli.Command{
	Name:      "mount",
	Usage:     "mount an image to a target path",
	ArgsUsage: "[flags] <ref> <target>",
	Description: `Mount an image rootfs to a specified path.

When you are done, use the unmount command.
`,
	Flags: []cli.Flag{
		commands.SnapshotterFlag,
		cli.BoolFlag{
			Name:  "rw",
			Usage: "Enable write support on the mount",
		},
		cli.StringFlag{
			Name:  "platform",
			Usage: "Mount the image for the specified platform",
			Value: platforms.DefaultString(),
		},
	},
	Action: func(context *cli.Context) (retErr error) {
		ref, target := context.Args().First(), context.Args().Get(1)
		if ref == "" {
			return errors.New("please provide an image reference to mount")
		}
		if target == "" {
			return errors.New("please provide a target path to mount to")
		}
		p, err := platforms.Parse(context.String("platform"))
		if err != nil {
			return fmt.Errorf("unable to parse platform %s: %w", context.String("platform"), err)
		}
		sn := context.String("snapshotter")
		if sn == "" {
			sn = client.DefaultSnapshotter
		}
		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()

		// The snapshot is named by the target, and so is the lease
		// that keeps it (and the image's layers) until unmount --rm, or
		// a day; mounting the same target again finds both.
		lctx, done, err := c.WithLease(ctx,
			leases.WithID(target),
			leases.WithExpiration(mountLeaseExpiry),
			leases.WithLabels(map[string]string{"containerd.io/gc.ref.snapshot." + sn: target}),
		)
		switch {
		case errdefs.IsAlreadyExists(err):
			ctx = leases.WithLease(ctx, target)
		case err != nil:
			return err
		default:
			ctx = lctx
			defer func() {
				if retErr != nil {
					done(ctx)
				}
			}()
		}

		img, err := c.ImageService().Get(ctx, ref)
		if err != nil {
			return err
		}
		i := client.NewImageWithPlatform(c, img, platforms.Only(p))
		if err := i.Unpack(ctx, sn); err != nil {
			return fmt.Errorf("error unpacking image: %w", err)
		}
		diffIDs, err := i.RootFS(ctx)
		if err != nil {
			return err
		}
		chainID := identity.ChainID(diffIDs).String()
		fmt.Fprintln(commands.Stdout, chainID)

		s := c.SnapshotService(sn)
		var mounts []mount.Mount
		if context.Bool("rw") {
			mounts, err = s.Prepare(ctx, target, chainID)
		} else {
			mounts, err = s.View(ctx, target, chainID)
		}
		if errdefs.IsAlreadyExists(err) {
			mounts, err = s.Mounts(ctx, target)
		}
		if err != nil {
			return err
		}
		if err := mount.All(mounts, target); err != nil {
			if err := s.Remove(ctx, target); err != nil && !errdefs.IsNotFound(err) {
				fmt.Fprintln(os.Stderr, "Error cleaning up snapshot after mount error:", err)
			}
			return err
		}
		fmt.Fprintln(commands.Stdout, target)
		return nil
	},
}

var unmountCommand = cli.Command{
	Name:        "unmount",
	Usage:       "unmount the image from the target",
	ArgsUsage:   "[flags] <target>",
	Description: "Unmount the image rootfs from the specified target.",
	Flags: []cli.Flag{
		commands.SnapshotterFlag,
		cli.BoolFlag{
			Name:  "rm",
			Usage: "remove the snapshot after a successful unmount",
		},
	},
	Action: func(context *cli.Context) error {
		target := context.Args().First()
		if target == "" {
			return errors.New("please provide a target path to unmount from")
		}
		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()
		if err := mount.UnmountAll(target, 0); err != nil {
			return err
		}
		if context.Bool("rm") {
			sn := context.String("snapshotter")
			if sn == "" {
				sn = client.DefaultSnapshotter
			}
			if err := c.LeasesService().Delete(ctx, leases.Lease{ID: target}); err != nil && !errdefs.IsNotFound(err) {
				return fmt.Errorf("error deleting lease: %w", err)
			}
			if err := c.SnapshotService(sn).Remove(ctx, target); err != nil && !errdefs.IsNotFound(err) {
				return fmt.Errorf("error removing snapshot: %w", err)
			}
		}
		fmt.Fprintln(commands.Stdout, target)
		return nil
	},
}
