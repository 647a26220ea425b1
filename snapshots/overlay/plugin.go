package overlay

import (
	"fmt"
	"os"

	"github.com/containerd/platforms"
	"github.com/llitfkitfk/containerd/plugin"
)

// Config is the plugin's section of the daemon's config file.
type Config struct {
	// RootPath, if set, holds the snapshots instead of the plugin's own
	// directory under the daemon's root.
	RootPath string `toml:"root_path"`
}

func init() {
	plugin.Register(&plugin.Registration{
		Type:   plugin.SnapshotPlugin,
		ID:     "overlayfs",
		Config: &Config{},
		InitFn: initPlugin,
	})
}

func initPlugin(ic *plugin.InitContext) (interface{}, error) {
	ic.Meta.Platforms = append(ic.Meta.Platforms, platforms.Normalize(platforms.DefaultSpec()))
	root := ic.Root
	if c, ok := ic.Config.(*Config); ok && c.RootPath != "" {
		root = c.RootPath
	}
	ic.Meta.Exports["root"] = root
	// A layer's upper directory holds its own changes alone (whiteouts as
	// overlay's devices), so it can be applied before its parent exists and
	// rebased onto it at commit: clients and our unpacker read "rebase"
	// here and apply layers in parallel (containerd 2.1+ does the same).
	ic.Meta.Capabilities = append(ic.Meta.Capabilities, "rebase")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("create overlayfs snapshotter root: %w", err)
	}
	if err := Supported(root); err != nil {
		// Not a failure: the daemon runs on, with the naive snapshotter.
		return nil, fmt.Errorf("overlay unavailable on %s: %v: %w", root, err, plugin.ErrSkipPlugin)
	}
	return NewSnapshotter(root)
}
