// Package snapshots holds the snapshots service: the local service, which
// is the metadata store's namespaced snapshotters announcing prepares,
// commits and removals as /snapshot/* events, and its gRPC adapter.
package snapshots

import (
	"context"
	"errors"
	"fmt"

	eventstypes "github.com/llitfkitfk/containerd/api/events"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/metadata"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
	"github.com/llitfkitfk/containerd/snapshots"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.ServicePlugin,
		ID:       services.SnapshotsService,
		Requires: []plugin.Type{plugin.MetadataPlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			m, err := ic.Get(plugin.MetadataPlugin)
			if err != nil {
				return nil, err
			}
			db := m.(*metadata.DB)
			loaded, err := ic.GetByType(plugin.SnapshotPlugin)
			if err != nil && !errors.Is(err, plugin.ErrPluginNotFound) {
				return nil, err
			}
			all := make(map[string]snapshots.Snapshotter, len(loaded))
			for name := range loaded {
				if sn := db.Snapshotter(name); sn != nil { // nil: it failed to load
					all[name] = sn
				}
			}
			return NewLocal(all, ic.Events), nil
		},
	})
}

// NewLocal returns the snapshotters, by name, as the snapshots service:
// each announces its changes through publisher.
func NewLocal(all map[string]snapshots.Snapshotter, publisher events.Publisher) map[string]snapshots.Snapshotter {
	out := make(map[string]snapshots.Snapshotter, len(all))
	for name, sn := range all {
		out[name] = &localService{Snapshotter: sn, name: name, publisher: publisher}
	}
	return out
}

// localService is a snapshotter that announces prepares, commits and removals.
// It always offers Cleanup, which is NotImplemented where the snapshotter
// it wraps does not clean up.
type localService struct {
	snapshots.Snapshotter
	name      string
	publisher events.Publisher
}

var _ snapshots.Cleaner = (*localService)(nil)

func (l *localService) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	mounts, err := l.Snapshotter.Prepare(ctx, key, parent, opts...)
	if err != nil {
		return nil, err
	}
	events.Announce(ctx, l.publisher, "/snapshot/prepare", &eventstypes.SnapshotPrepare{
		Key: key, Parent: parent, Snapshotter: l.name,
	})
	return mounts, nil
}

func (l *localService) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	if err := l.Snapshotter.Commit(ctx, name, key, opts...); err != nil {
		return err
	}
	events.Announce(ctx, l.publisher, "/snapshot/commit", &eventstypes.SnapshotCommit{
		Key: key, Name: name, Snapshotter: l.name,
	})
	return nil
}

func (l *localService) Remove(ctx context.Context, key string) error {
	if err := l.Snapshotter.Remove(ctx, key); err != nil {
		return err
	}
	events.Announce(ctx, l.publisher, "/snapshot/remove", &eventstypes.SnapshotRemove{
		Key: key, Snapshotter: l.name,
	})
	return nil
}

func (l *localService) Cleanup(ctx context.Context) error {
	c, ok := l.Snapshotter.(snapshots.Cleaner)
	if !ok {
		return fmt.Errorf("snapshotter %s does not clean up: %w", l.name, errdefs.ErrNotImplemented)
	}
	return c.Cleanup(ctx)
}
