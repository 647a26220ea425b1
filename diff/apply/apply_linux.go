package apply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/archive"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/sys"
)

// apply writes the tar r onto mounts. An overlay with an upper directory
// is written directly there, its whiteouts converted to overlayfs' own:
// no mount, and no copy-ups or lookups through the lower layers. Anything
// else is mounted and written through.
func apply(ctx context.Context, mounts []mount.Mount, r io.Reader, sync bool) (err error) {
	// In a user namespace the whiteout devices cannot be made.
	if len(mounts) == 1 && mounts[0].Type == "overlay" && !sys.RunningInUserNS() {
		upper, lowers, err := overlayDirs(mounts[0].Options)
		switch {
		case err == nil:
			opts := []archive.ApplyOpt{archive.WithConvertWhiteout(archive.OverlayConvertWhiteout)}
			if len(lowers) > 0 {
				opts = append(opts, archive.WithParents(lowers))
			}
			if _, err := archive.Apply(ctx, upper, r, opts...); err != nil {
				return err
			}
			if sync {
				return syncFs(upper)
			}
			return nil
		case errors.Is(err, errNotDirect):
			log.G(ctx).WithError(err).Debug("applying through an overlay mount")
		default:
			return err
		}
	}
	if sync && len(mounts) == 1 && mounts[0].Type == "bind" {
		defer func() {
			if err == nil {
				err = syncFs(mounts[0].Source)
			}
		}()
	}
	return mount.WithTempMount(ctx, mounts, func(root string) error {
		_, err := archive.Apply(ctx, root, r)
		return err
	})
}

var errNotDirect = errors.New("overlay cannot be written directly")

// overlayDirs returns the upper and lower directories of an overlay
// mount's options, or errNotDirect if it cannot be written through its
// upper directory.
func overlayDirs(options []string) (upper string, lowers []string, err error) {
	for _, o := range options {
		switch {
		case strings.HasPrefix(o, "upperdir="):
			upper = strings.TrimPrefix(o, "upperdir=")
		case strings.HasPrefix(o, "lowerdir="):
			lowers = strings.Split(strings.TrimPrefix(o, "lowerdir="), ":")
		case o == "userxattr":
			// Whiteouts there are user.overlay.* xattrs, which
			// OverlayConvertWhiteout does not write.
			return "", nil, fmt.Errorf("%w: userxattr", errNotDirect)
		}
	}
	if upper == "" {
		return "", nil, fmt.Errorf("%w: no upperdir", errNotDirect)
	}
	return upper, lowers, nil
}

func syncFs(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
