// Package overlay is the snapshotter that stacks layers with the kernel's
// overlay filesystem: each snapshot stores only its own changes, in an
// upper directory, and its parents' directories are the lower layers.
package overlay

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/snapshots/internal/dirstore"
)

// snapshotter keeps snapshot id in root/snapshots/<id>: its changes in
// fs, and, while active, overlay's scratch space in work. Stat, Update,
// Commit's bookkeeping, Remove, Walk, Cleanup and Close are the Store's.
type snapshotter struct {
	*dirstore.Store
	indexOff bool // add index=off to overlay mounts
}

var (
	_ snapshots.Snapshotter = (*snapshotter)(nil)
	_ snapshots.Cleaner     = (*snapshotter)(nil)
)

// NewSnapshotter returns an overlay snapshotter keeping its records in
// root/metadata.db and its snapshots in root/snapshots. It does not check
// that overlay works on root; Supported does.
func NewSnapshotter(root string) (snapshots.Snapshotter, error) {
	store, err := dirstore.Open(context.Background(), root)
	if err != nil {
		return nil, fmt.Errorf("overlayfs snapshotter: %w", err)
	}
	return &snapshotter{Store: store, indexOff: supportsIndex()}, nil
}

// supportsIndex reports whether the kernel knows overlay's index option.
// The index ties an upper directory to the lower layers it was first
// mounted with; a snapshot's parents are mounted in other combinations by
// its siblings' children, so it must be off.
func supportsIndex() bool {
	_, err := os.Stat("/sys/module/overlay/parameters/index")
	return err == nil
}

func (o *snapshotter) upper(id string) string { return filepath.Join(o.Dirs.Path(id), "fs") }
func (o *snapshotter) work(id string) string  { return filepath.Join(o.Dirs.Path(id), "work") }

// Usage measures the upper directory of an active snapshot, which holds
// all of its changes.
func (o *snapshotter) Usage(ctx context.Context, key string) (snapshots.Usage, error) {
	return o.UsageIn(ctx, key, o.upper)
}

func (o *snapshotter) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	sn, err := o.Snapshot(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("mounts of snapshot %q: %w", key, err)
	}
	return o.mounts(sn.Kind, sn.ID, sn.ParentIDs), nil
}

func (o *snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return o.create(ctx, snapshots.KindActive, key, parent, opts)
}

func (o *snapshotter) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return o.create(ctx, snapshots.KindView, key, parent, opts)
}

func (o *snapshotter) create(ctx context.Context, kind snapshots.Kind, key, parent string, opts []snapshots.Opt) ([]mount.Mount, error) {
	parentID, err := o.CheckCreate(ctx, key, parent)
	if err != nil {
		return nil, err
	}
	tmp, err := o.Dirs.Temp()
	if err != nil {
		return nil, err
	}
	defer tmp.Close()
	if err := o.prepareDir(tmp.Path, kind, parentID); err != nil {
		return nil, fmt.Errorf("create snapshot %q: %w", key, err)
	}
	sn, err := o.Create(ctx, kind, key, parent, parentID, tmp, opts)
	if err != nil {
		return nil, err
	}
	return o.mounts(sn.Kind, sn.ID, sn.ParentIDs), nil
}

// prepareDir makes the fs and work directories in dir. The root of the
// merged filesystem shows the upper directory's owner and mode, so fs
// takes the parent's.
func (o *snapshotter) prepareDir(dir string, kind snapshots.Kind, parentID string) error {
	fs := filepath.Join(dir, "fs")
	if err := os.Mkdir(fs, 0o755); err != nil {
		return err
	}
	if parentID != "" {
		var st unix.Stat_t
		if err := unix.Stat(o.upper(parentID), &st); err != nil {
			return &os.PathError{Op: "stat", Path: o.upper(parentID), Err: err}
		}
		if err := unix.Lchown(fs, int(st.Uid), int(st.Gid)); err != nil {
			return &os.PathError{Op: "lchown", Path: fs, Err: err}
		}
		if err := unix.Chmod(fs, st.Mode&0o7777); err != nil {
			return &os.PathError{Op: "chmod", Path: fs, Err: err}
		}
	}
	if kind == snapshots.KindActive {
		if err := os.Mkdir(filepath.Join(dir, "work"), 0o711); err != nil {
			return err
		}
	}
	return nil
}

// mounts assembles a snapshot. Without parents, or for a view of a single
// parent, one directory is the whole filesystem and a bind mount does;
// overlay needs at least one lower layer, or two without an upper.
func (o *snapshotter) mounts(kind snapshots.Kind, id string, parentIDs []string) []mount.Mount {
	if len(parentIDs) == 0 {
		mode := "rw"
		if kind == snapshots.KindView {
			mode = "ro"
		}
		return []mount.Mount{{Type: "bind", Source: o.upper(id), Options: []string{mode, "rbind"}}}
	}
	if kind == snapshots.KindView && len(parentIDs) == 1 {
		return []mount.Mount{{Type: "bind", Source: o.upper(parentIDs[0]), Options: []string{"ro", "rbind"}}}
	}

	var options []string
	if o.indexOff {
		options = append(options, "index=off")
	}
	if kind == snapshots.KindActive {
		options = append(options, "workdir="+o.work(id), "upperdir="+o.upper(id))
	}
	lowers := make([]string, len(parentIDs))
	for i, pid := range parentIDs {
		lowers[i] = o.upper(pid) // nearest parent first: overlay's top-down order
	}
	options = append(options, "lowerdir="+strings.Join(lowers, ":"))
	return []mount.Mount{{Type: "overlay", Source: "overlay", Options: options}}
}

// Commit records the active snapshot key as committed under name, with the
// usage of its upper directory.
//
// An option setting Info.Parent commits a snapshot prepared without a
// parent onto that parent (a rebase): an upper directory holds its own
// changes alone, whiteouts included, so a layer can be applied into it
// before its parent exists and stacked on commit, which is what lets the
// unpacker apply layers in parallel. What it cannot take from a parent it
// did not have is the root directory's owner and mode, which Prepare
// copies from a parent; a layer that does not list "./" keeps 0755 root.
func (o *snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	return o.CommitWith(ctx, name, key, func(id string) (snapshots.Usage, error) {
		return dirstore.DiskUsage(ctx, o.upper(id))
	}, opts)
}
