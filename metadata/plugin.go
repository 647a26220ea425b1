package metadata

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/snapshots"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.MetadataPlugin,
		ID:       "bolt",
		Requires: []plugin.Type{plugin.ContentPlugin, plugin.SnapshotPlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			p, err := ic.Get(plugin.ContentPlugin)
			if err != nil {
				return nil, err
			}
			cs, ok := p.(content.Store)
			if !ok {
				return nil, fmt.Errorf("%s plugin is a %T, not a content.Store", plugin.ContentPlugin, p)
			}
			ss, err := loadedSnapshotters(ic)
			if err != nil {
				return nil, err
			}
			return Open(ic.Context, filepath.Join(ic.Root, "meta.db"), cs, ss)
		},
	})
}

// loadedSnapshotters returns every snapshotter plugin that loaded, by id.
// One that did not (overlayfs on a filesystem without overlay, say) is
// left out; its namespaces' records stay, unused, until it loads again.
func loadedSnapshotters(ic *plugin.InitContext) (map[string]snapshots.Snapshotter, error) {
	ps, err := ic.GetByType(plugin.SnapshotPlugin)
	if errors.Is(err, plugin.ErrPluginNotFound) {
		return nil, nil // a daemon built without snapshotters
	}
	if err != nil {
		return nil, err
	}
	ss := make(map[string]snapshots.Snapshotter, len(ps))
	for id, p := range ps {
		inst, err := p.Instance()
		if err != nil {
			log.G(ic.Context).WithError(err).WithField("snapshotter", id).Info("snapshotter not available to metadata")
			continue
		}
		sn, ok := inst.(snapshots.Snapshotter)
		if !ok {
			return nil, fmt.Errorf("%s.%s plugin is a %T, not a snapshots.Snapshotter", plugin.SnapshotPlugin, id, inst)
		}
		ss[id] = sn
	}
	return ss, nil
}
