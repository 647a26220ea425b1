// Package naive is the snapshotter that works on any filesystem: each
// active snapshot is a full copy of its parent, handed out as a bind mount.
// It costs disk and time in proportion to the image, and needs nothing of
// the kernel beyond bind mounts.
package naive

import (
	"context"
	"fmt"
	"os"

	"github.com/containerd/platforms"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/snapshots/internal/dirstore"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type: plugin.SnapshotPlugin,
		ID:   "naive",
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			ic.Meta.Platforms = append(ic.Meta.Platforms, platforms.Normalize(platforms.DefaultSpec()))
			return NewSnapshotter(ic.Root)
		},
	})
}

// snapshotter keeps each snapshot in root/snapshots/<id>. Stat, Update,
// Commit's bookkeeping, Remove, Walk, Cleanup and Close are the Store's.
type snapshotter struct {
	*dirstore.Store
}

var (
	_ snapshots.Snapshotter = (*snapshotter)(nil)
	_ snapshots.Cleaner     = (*snapshotter)(nil)
)

// NewSnapshotter returns a copying snapshotter keeping its records in
// root/metadata.db and its snapshots in root/snapshots.
func NewSnapshotter(root string) (snapshots.Snapshotter, error) {
	store, err := dirstore.Open(context.Background(), root)
	if err != nil {
		return nil, fmt.Errorf("naive snapshotter: %w", err)
	}
	return &snapshotter{store}, nil
}

func (s *snapshotter) Usage(ctx context.Context, key string) (snapshots.Usage, error) {
	return s.UsageIn(ctx, key, s.Dirs.Path)
}

func (s *snapshotter) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	sn, err := s.Snapshot(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("mounts of snapshot %q: %w", key, err)
	}
	return s.mounts(sn.Kind, sn.ID, sn.ParentIDs), nil
}

func (s *snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return s.create(ctx, snapshots.KindActive, key, parent, opts)
}

func (s *snapshotter) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return s.create(ctx, snapshots.KindView, key, parent, opts)
}

// create makes an active snapshot or view. An active snapshot gets a copy
// of its parent; a view of a parent is a read-only bind of the parent
// itself, which is committed and so does not change under it.
//
// The copy is made before the write transaction, so that a large one does
// not hold up every other snapshot operation.
func (s *snapshotter) create(ctx context.Context, kind snapshots.Kind, key, parent string, opts []snapshots.Opt) ([]mount.Mount, error) {
	parentID, err := s.CheckCreate(ctx, key, parent)
	if err != nil {
		return nil, err
	}
	var tmp *dirstore.TempDir
	if kind == snapshots.KindActive || parent == "" {
		if tmp, err = s.Dirs.Temp(); err != nil {
			return nil, err
		}
		defer tmp.Close()
		if parent == "" {
			// MkdirTemp made it 0700; an empty root is as mkdir(1) makes it.
			if err := os.Chmod(tmp.Path, 0o755); err != nil {
				return nil, fmt.Errorf("create snapshot %q: %w", key, err)
			}
		} else if err := copyTree(ctx, tmp.Path, s.Dirs.Path(parentID)); err != nil {
			return nil, fmt.Errorf("create snapshot %q: copy parent %q: %w", key, parent, err)
		}
	}
	sn, err := s.Create(ctx, kind, key, parent, parentID, tmp, opts)
	if err != nil {
		return nil, err
	}
	return s.mounts(sn.Kind, sn.ID, sn.ParentIDs), nil
}

func (s *snapshotter) mounts(kind snapshots.Kind, id string, parentIDs []string) []mount.Mount {
	mode, source := "rw", s.Dirs.Path(id)
	if kind == snapshots.KindView {
		mode = "ro"
		if len(parentIDs) > 0 {
			source = s.Dirs.Path(parentIDs[0])
		}
	}
	return []mount.Mount{{Type: "bind", Source: source, Options: []string{mode, "rbind"}}}
}

func (s *snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	return s.CommitWith(ctx, name, key, func(id string) (snapshots.Usage, error) {
		return dirstore.DiskUsage(ctx, s.Dirs.Path(id))
	}, opts)
}
