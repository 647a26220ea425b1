package v2

import (
	"fmt"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/plugin"
)

// Config is the plugin's section of the daemon's config, as containerd's
// [plugins."io.containerd.runtime.v2.task"].
type Config struct {
	// Platforms are the platforms tasks can run on, "os/arch[/variant]";
	// introspection reports them.
	Platforms []string `toml:"platforms"`
	// SchedCore has shims give containers a core scheduling group of
	// their own (SCHED_CORE=1 in their environment).
	SchedCore bool `toml:"sched_core"`
}

func init() {
	plugin.Register(&plugin.Registration{
		Type:   plugin.RuntimePluginV2,
		ID:     "task",
		Config: &Config{Platforms: []string{platforms.DefaultString()}},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			config := ic.Config.(*Config)
			platforms, err := parsePlatforms(config.Platforms)
			if err != nil {
				return nil, err
			}
			ic.Meta.Platforms = platforms
			return New(ic.Context, &ManagerConfig{
				Root:         ic.Root,
				State:        ic.State,
				Address:      ic.Address,
				TTRPCAddress: ic.TTRPCAddress,
				Events:       ic.Events,
				SchedCore:    config.SchedCore,
			})
		},
	})
}

// parsePlatforms parses "os/arch[/variant]" specifiers as containerd does,
// normalized ("aarch64" is "arm64/v8"), so that they compare equal to the
// platforms the snapshotters report for the same machine.
func parsePlatforms(specs []string) ([]ocispec.Platform, error) {
	out := make([]ocispec.Platform, 0, len(specs))
	for _, s := range specs {
		p, err := platforms.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("platform %q: %v: %w", s, err, errdefs.ErrInvalidArgument)
		}
		out = append(out, platforms.Normalize(p))
	}
	return out, nil
}
