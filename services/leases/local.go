// Package leases holds the leases service: the local service, which is the
// metadata store's lease manager, and its gRPC adapter.
package leases

import (
	"github.com/llitfkitfk/containerd/metadata"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type: plugin.ServicePlugin,
		ID:   services.LeasesService,
		// After the collector too, which synchronous deletes wait for.
		Requires: []plugin.Type{plugin.MetadataPlugin, plugin.GCPlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			m, err := ic.Get(plugin.MetadataPlugin)
			if err != nil {
				return nil, err
			}
			return metadata.NewLeaseManager(m.(*metadata.DB)), nil
		},
	})
}
