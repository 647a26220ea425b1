package metadata

import (
	"path/filepath"

	"github.com/llitfkitfk/containerd/plugin"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type: plugin.MetadataPlugin,
		ID:   "bolt",
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			return Open(ic.Context, filepath.Join(ic.Root, "meta.db"))
		},
	})
}
