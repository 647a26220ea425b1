package images

import (
	"github.com/llitfkitfk/containerd/metadata"
	"github.com/llitfkitfk/containerd/plugin"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type: plugin.GRPCPlugin,
		ID:   "images",
		// After the collector too, which synchronous deletes wait for.
		Requires: []plugin.Type{plugin.MetadataPlugin, plugin.GCPlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			m, err := ic.Get(plugin.MetadataPlugin)
			if err != nil {
				return nil, err
			}
			return newService(metadata.NewImageStore(m.(*metadata.DB)), ic.Events), nil
		},
	})
}
