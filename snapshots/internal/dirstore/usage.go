// Package dirstore is what the snapshotters that keep each snapshot in a
// directory named by its ID have in common: the records and directories
// kept in step, and measuring a directory's disk usage.
package dirstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/snapshots"
)

// DiskUsage returns the disk used by the tree at root, root included: the
// blocks allocated, as du counts them, and the number of distinct inodes,
// so that hard links are counted once.
func DiskUsage(ctx context.Context, root string) (snapshots.Usage, error) {
	type inode struct{ dev, ino uint64 }
	var (
		usage snapshots.Usage
		seen  = map[inode]struct{}{}
		st    unix.Stat_t
	)
	err := filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := unix.Lstat(path, &st); err != nil {
			return &fs.PathError{Op: "lstat", Path: path, Err: err}
		}
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			key := inode{uint64(st.Dev), st.Ino}
			if _, ok := seen[key]; ok {
				return nil
			}
			seen[key] = struct{}{}
		}
		usage.Inodes++
		usage.Size += st.Blocks * 512
		return nil
	})
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return snapshots.Usage{}, err
		}
		return snapshots.Usage{}, fmt.Errorf("measure disk usage of %s: %w", root, err)
	}
	return usage, nil
}
