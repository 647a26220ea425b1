package exchange

import "github.com/llitfkitfk/containerd/plugin"

// The server makes the one exchange every plugin is given; this plugin
// makes it visible, like any other part, to introspection and to plugins
// that ask for the event type.
func init() {
	plugin.Register(&plugin.Registration{
		Type: plugin.EventPlugin,
		ID:   "exchange",
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			return ic.Events, nil
		},
	})
}
