package nri

import (
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/plugin"
)

// PluginType is the type of the NRI plugin (containerd's).
const PluginType plugin.Type = "io.containerd.nri.v1"

// PluginID is its id: the plugin is io.containerd.nri.v1.nri.
const PluginID = "nri"

func init() {
	plugin.Register(&plugin.Registration{
		Type:   PluginType,
		ID:     PluginID,
		Config: DefaultConfig(),
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			cfg := ic.Config.(*Config)
			if cfg.Disable {
				log.G(ic.Context).Info("NRI is disabled by configuration")
				return nil, plugin.ErrSkipPlugin
			}
			if err := cfg.Validate(); err != nil {
				return nil, err
			}
			// The socket opens when the runtime using NRI starts it
			// (NRI.Start), once that runtime knows its pods.
			return New(*cfg), nil
		},
	})
}
