package local

import (
	"strings"
	"testing"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/transfer"
)

// initWith loads stand-ins for the plugins the transfer plugin requires,
// backed by e, then the transfer plugin with config c.
func initWith(t *testing.T, e *env, c *PluginConfig) (*Service, *plugin.Plugin) {
	t.Helper()
	set := plugin.NewPluginSet()
	load := func(r *plugin.Registration) *plugin.Plugin {
		ic := plugin.NewContext(e.ctx, r, set, t.TempDir(), t.TempDir())
		ic.Config = r.Config
		p := r.Init(ic)
		if err := set.Add(p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	instance := func(typ plugin.Type, id string, v interface{}, caps ...string) {
		load(&plugin.Registration{Type: typ, ID: id, InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			ic.Meta.Capabilities = caps
			return v, nil
		}})
	}
	instance(plugin.SnapshotPlugin, "naive", e.sn, "rebase")
	instance(plugin.DiffPlugin, "dir", testutil.DirApplier{CS: e.cs})
	instance(plugin.ServicePlugin, services.ContentService, e.cs)
	instance(plugin.ServicePlugin, services.ImagesService, e.is)
	instance(plugin.ServicePlugin, services.LeasesService, e.leases)
	instance(plugin.ServicePlugin, services.SnapshotsService, map[string]snapshots.Snapshotter{"naive": e.sn})
	instance(plugin.ServicePlugin, services.DiffService, testutil.DirApplier{CS: e.cs})

	p := load(&plugin.Registration{Type: plugin.TransferPlugin, ID: "local", Config: c, InitFn: initPlugin})
	inst, err := p.Instance()
	if err != nil {
		return nil, p
	}
	return inst.(*Service), p
}

func TestPluginDefaults(t *testing.T) {
	e := newEnv(t)
	// No overlayfs here: the default's entry for it is dropped, not the
	// plugin, and the loaded snapshotter (naive) is there for clients
	// that name it.
	s, p := initWith(t, e, &PluginConfig{MaxConcurrentDownloads: 3, MaxConcurrentUploadedLayers: 3, RegistryConfigPath: DefaultRegistryConfigPath})
	if err := p.Err(); err != nil {
		t.Fatalf("plugin with the default config: %v", err)
	}
	if ups := s.config.UnpackPlatforms; len(ups) != 1 || ups[0].SnapshotterKey != "naive" || !ups[0].Platform.Match(platforms.DefaultSpec()) {
		t.Errorf("unpack platforms %+v, want the host's into naive alone", ups)
	}
	if _, ok := s.unpackPlatform(transfer.UnpackConfiguration{Platform: platforms.DefaultSpec(), Snapshotter: "naive"}); !ok {
		t.Error("an unpack into naive, loaded but not configured, is refused")
	}
	if s.RegistryConfigPath() != DefaultRegistryConfigPath || p.Meta.Exports["config_path"] != DefaultRegistryConfigPath {
		t.Errorf("config path %q, exported %q", s.RegistryConfigPath(), p.Meta.Exports["config_path"])
	}
	if s.downloads == nil || s.uploads == nil || s.config.DefaultSnapshotter != "overlayfs" {
		t.Errorf("limits or default snapshotter not set: %+v", s.config)
	}
}

func TestPluginUnpackConfig(t *testing.T) {
	e := newEnv(t)
	s, p := initWith(t, e, &PluginConfig{UnpackConfiguration: []UnpackConfig{{Platform: "linux/arm64", Snapshotter: "naive", Differ: "dir"}}})
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	if n := len(s.config.UnpackPlatforms); n != 1 {
		t.Fatalf("%d unpack platforms, want 1", n)
	}
	up := s.config.UnpackPlatforms[0]
	if up.SnapshotterKey != "naive" || up.Snapshotter == nil || up.Applier == nil {
		t.Errorf("unpack platform %+v", up)
	}
	if len(up.SnapshotterCapabilities) != 1 || up.SnapshotterCapabilities[0] != "rebase" {
		t.Errorf("snapshotter capabilities %v, want the plugin's [rebase]", up.SnapshotterCapabilities)
	}
	// Matched by OS, as containerd does unless told to check platforms.
	if !up.Platform.Match(ocispec.Platform{OS: "linux", Architecture: "amd64"}) || up.Platform.Match(ocispec.Platform{OS: "windows", Architecture: "arm64"}) {
		t.Error("unpack platform does not match by OS")
	}

	for _, c := range []struct {
		uc   UnpackConfig
		want string
	}{
		{UnpackConfig{Platform: platforms.DefaultString(), Snapshotter: "zfs"}, `snapshotter "zfs"`},
		{UnpackConfig{Platform: platforms.DefaultString(), Snapshotter: "naive", Differ: "nope"}, `differ "nope"`},
		{UnpackConfig{Platform: "linux/amd64/v99/x", Snapshotter: "naive"}, `platform "linux/amd64/v99/x"`},
	} {
		_, p := initWith(t, e, &PluginConfig{UnpackConfiguration: []UnpackConfig{c.uc}})
		if err := p.Err(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("unpack_config %+v: %v, want an error naming %s", c.uc, err, c.want)
		}
	}
	// Present and empty: no unpacking, and no error.
	s, p = initWith(t, e, &PluginConfig{UnpackConfiguration: []UnpackConfig{}})
	if p.Err() != nil || len(s.config.UnpackPlatforms) != 0 {
		t.Errorf("empty unpack_config: %v, %+v", p.Err(), s.config.UnpackPlatforms)
	}
}
