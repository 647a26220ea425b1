package metadata

import (
	"fmt"
	"path/filepath"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/plugin"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type: plugin.MetadataPlugin,
		ID:   "bolt",
		// Snapshotters will join the content store here.
		Requires: []plugin.Type{plugin.ContentPlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			p, err := ic.Get(plugin.ContentPlugin)
			if err != nil {
				return nil, err
			}
			cs, ok := p.(content.Store)
			if !ok {
				return nil, fmt.Errorf("%s plugin is a %T, not a content.Store", plugin.ContentPlugin, p)
			}
			return Open(ic.Context, filepath.Join(ic.Root, "meta.db"), cs)
		},
	})
}
