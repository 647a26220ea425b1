package local

import "github.com/llitfkitfk/containerd/plugin"

func init() {
	plugin.Register(&plugin.Registration{
		Type: plugin.ContentPlugin,
		ID:   "content",
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			ic.Meta.Exports["root"] = ic.Root
			return NewStore(ic.Root)
		},
	})
}
