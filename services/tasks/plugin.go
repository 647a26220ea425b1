package tasks

import (
	"fmt"

	"github.com/llitfkitfk/containerd/metadata"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/runtime"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.GRPCPlugin,
		ID:       "tasks",
		Requires: []plugin.Type{plugin.RuntimePluginV2, plugin.MetadataPlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			p, err := ic.Get(plugin.RuntimePluginV2)
			if err != nil {
				return nil, err
			}
			rt, ok := p.(runtime.PlatformRuntime)
			if !ok {
				return nil, fmt.Errorf("%s plugin is a %T, not a runtime.PlatformRuntime", plugin.RuntimePluginV2, p)
			}
			m, err := ic.Get(plugin.MetadataPlugin)
			if err != nil {
				return nil, err
			}
			db := m.(*metadata.DB)
			return newService(rt, metadata.NewContainerStore(db), db.Snapshotter), nil
		},
	})
}
