package local

import (
	"fmt"
	"maps"
	"slices"

	"github.com/containerd/platforms"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/unpack"
)

// DefaultSnapshotter is the snapshotter unpacked into when a client names
// none, as in containerd on Linux.
const DefaultSnapshotter = "overlayfs"

// DefaultRegistryConfigPath is where hosts.toml files are looked for.
const DefaultRegistryConfigPath = "/etc/containerd/certs.d"

// PluginConfig is the plugin's section of the daemon's config file,
// [plugins."io.containerd.transfer.v1.local"]; the keys are containerd's.
type PluginConfig struct {
	MaxConcurrentDownloads      int `toml:"max_concurrent_downloads"`
	MaxConcurrentUploadedLayers int `toml:"max_concurrent_uploaded_layers"`
	// UnpackConfiguration lists the platform and snapshotter pairs
	// pulls may unpack into. Absent: the host platform into overlayfs;
	// present and empty: no unpacking.
	UnpackConfiguration []UnpackConfig `toml:"unpack_config,omitempty"`
	// RegistryConfigPath is the directory of per-host hosts.toml files.
	RegistryConfigPath string `toml:"config_path"`
}

// UnpackConfig is one entry of unpack_config.
type UnpackConfig struct {
	// Platform is matched, by OS, against the platforms clients ask to
	// unpack, as containerd does by default.
	Platform    string `toml:"platform"`
	Snapshotter string `toml:"snapshotter"`
	// Differ names the differ plugin that applies layers; empty: the
	// diff service, which tries the configured differs in order.
	Differ string `toml:"differ"`
}

func init() {
	plugin.Register(&plugin.Registration{
		Type: plugin.TransferPlugin,
		ID:   "local",
		// The local services (content, images, leases, snapshots, diff),
		// the differs and the snapshotters' capabilities.
		Requires: []plugin.Type{plugin.ServicePlugin, plugin.DiffPlugin, plugin.SnapshotPlugin},
		Config: &PluginConfig{
			MaxConcurrentDownloads:      3,
			MaxConcurrentUploadedLayers: 3,
			RegistryConfigPath:          DefaultRegistryConfigPath,
		},
		InitFn: initPlugin,
	})
}

func initPlugin(ic *plugin.InitContext) (interface{}, error) {
	pc := ic.Config.(*PluginConfig)
	get := func(id string) (interface{}, error) {
		return ic.GetByID(plugin.ServicePlugin, id)
	}
	cs, err := get(services.ContentService)
	if err != nil {
		return nil, err
	}
	is, err := get(services.ImagesService)
	if err != nil {
		return nil, err
	}
	lm, err := get(services.LeasesService)
	if err != nil {
		return nil, err
	}
	ss, err := get(services.SnapshotsService)
	if err != nil {
		return nil, err
	}
	ds, err := get(services.DiffService)
	if err != nil {
		return nil, err
	}
	snapshotters, ok := ss.(map[string]snapshots.Snapshotter)
	if !ok {
		return nil, fmt.Errorf("%s is a %T, not a map of snapshotters", services.SnapshotsService, ss)
	}
	applier, ok := ds.(diff.Applier)
	if !ok {
		return nil, fmt.Errorf("%s is a %T, not a diff.Applier", services.DiffService, ds)
	}

	explicit := pc.UnpackConfiguration != nil
	ucs := pc.UnpackConfiguration
	if !explicit {
		// Without a configuration, the host's platform unpacks into the
		// default snapshotter, and into any other loaded one a client
		// names (`ctr images import --snapshotter naive`). containerd
		// 2.x lists only the default and skips the unpack of any other
		// without a word, leaving an image its client believes unpacked.
		ucs = []UnpackConfig{{Platform: platforms.DefaultString(), Snapshotter: DefaultSnapshotter}}
		for _, name := range slices.Sorted(maps.Keys(snapshotters)) {
			if name != DefaultSnapshotter {
				ucs = append(ucs, UnpackConfig{Platform: platforms.DefaultString(), Snapshotter: name})
			}
		}
	}
	var ups []unpack.Platform
	for _, uc := range ucs {
		up, err := unpackPlatform(ic, uc, snapshotters, applier)
		if err != nil {
			if explicit {
				return nil, fmt.Errorf("unpack_config: %w", err)
			}
			// The default names overlayfs, which may not have loaded
			// (a filesystem without overlay support): pulls then
			// fail on unpack, saying so, rather than the daemon.
			log.G(ic.Context).WithError(err).Warn("transfer: default unpack configuration unavailable")
			continue
		}
		ups = append(ups, up)
	}

	ic.Meta.Exports["config_path"] = pc.RegistryConfigPath
	return NewTransferService(cs.(content.Store), is.(images.Store), Config{
		Leases:                      lm.(leases.Manager),
		MaxConcurrentDownloads:      pc.MaxConcurrentDownloads,
		MaxConcurrentUploadedLayers: pc.MaxConcurrentUploadedLayers,
		UnpackPlatforms:             ups,
		DefaultSnapshotter:          DefaultSnapshotter,
		RegistryConfigPath:          pc.RegistryConfigPath,
	}), nil
}

func unpackPlatform(ic *plugin.InitContext, uc UnpackConfig, snapshotters map[string]snapshots.Snapshotter, applier diff.Applier) (unpack.Platform, error) {
	p, err := platforms.Parse(uc.Platform)
	if err != nil {
		return unpack.Platform{}, fmt.Errorf("platform %q: %w", uc.Platform, err)
	}
	sn, ok := snapshotters[uc.Snapshotter]
	if !ok {
		return unpack.Platform{}, fmt.Errorf("snapshotter %q is not loaded", uc.Snapshotter)
	}
	if uc.Differ != "" {
		d, err := ic.GetByID(plugin.DiffPlugin, uc.Differ)
		if err != nil {
			return unpack.Platform{}, fmt.Errorf("differ %q: %w", uc.Differ, err)
		}
		if applier, ok = d.(diff.Applier); !ok {
			return unpack.Platform{}, fmt.Errorf("differ %q is a %T, which does not apply layers", uc.Differ, d)
		}
	}
	// What the snapshotter's plugin advertises decides how the unpacker
	// may use it: with "rebase", layers are applied in parallel.
	var caps []string
	if ps, err := ic.GetByType(plugin.SnapshotPlugin); err == nil {
		if sp, ok := ps[uc.Snapshotter]; ok && sp.Meta != nil {
			caps = sp.Meta.Capabilities
		}
	}
	return unpack.Platform{
		Platform:                platforms.OnlyOS(p),
		SnapshotterKey:          uc.Snapshotter,
		Snapshotter:             sn,
		Applier:                 applier,
		SnapshotterCapabilities: caps,
	}, nil
}
