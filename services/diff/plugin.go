package diff

import (
	"fmt"

	"github.com/llitfkitfk/containerd/plugin"
)

// Config is the plugin's section of the daemon's config file.
type Config struct {
	// Order names the differ plugins to use, most preferred first. A call
	// goes to the first that does not answer NotImplemented for it; each
	// must give the same result, so the order only picks the fastest.
	// The key is containerd's.
	Order []string `toml:"default"`
}

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.GRPCPlugin,
		ID:       "diff",
		Requires: []plugin.Type{plugin.DiffPlugin},
		Config:   &Config{Order: []string{"walking"}},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			differs, err := orderedDiffers(ic, ic.Config.(*Config).Order)
			if err != nil {
				return nil, err
			}
			return newService(differs), nil
		},
	})
}

// orderedDiffers returns the differ plugins named in order. Each must have
// loaded: a configured differ that is missing is a configuration error.
func orderedDiffers(ic *plugin.InitContext, order []string) ([]differ, error) {
	if len(order) == 0 {
		return nil, fmt.Errorf("no differs configured")
	}
	loaded, err := ic.GetByType(plugin.DiffPlugin)
	if err != nil {
		return nil, err
	}
	differs := make([]differ, len(order))
	for i, name := range order {
		p, ok := loaded[name]
		if !ok {
			return nil, fmt.Errorf("differ %q is not loaded", name)
		}
		inst, err := p.Instance()
		if err != nil {
			return nil, fmt.Errorf("differ %q failed to load: %w", name, err)
		}
		if differs[i], ok = inst.(differ); !ok {
			return nil, fmt.Errorf("differ %q is a %T, which does not both apply and compare layers", name, inst)
		}
	}
	return differs, nil
}
