package server

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/plugin"
)

type testPluginConfig struct {
	Path  string `toml:"path"`
	Limit int    `toml:"limit"`
}

var testConfigRegistration = &plugin.Registration{
	Type:   "io.containerd.test.v1",
	ID:     "configured",
	Config: &testPluginConfig{Path: "/default", Limit: 1},
	InitFn: func(ic *plugin.InitContext) (interface{}, error) { return ic.Config, nil },
}

func init() { plugin.Register(testConfigRegistration) }

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadConfigImports(t *testing.T) {
	dir := t.TempDir()
	main := writeFile(t, dir, "config.toml", `
version = 2
root = "/main/root"
imports = ["conf.d/*.toml", "extra.toml"]
disabled_plugins = ["a.b"]
[grpc]
  address = "/main.sock"
`)
	writeFile(t, dir, "conf.d/10-state.toml", `
version = 2
state = "/imported/state"
disabled_plugins = ["c.d"]
[plugins."io.containerd.test.v1.configured"]
  path = "/imported"
`)
	writeFile(t, dir, "extra.toml", `
[grpc]
  uid = 42
`)
	c := DefaultConfig()
	if err := LoadConfig(main, c); err != nil {
		t.Fatal(err)
	}
	if c.Root != "/main/root" || c.State != "/imported/state" || c.GRPC.Address != "/main.sock" || c.GRPC.UID != 42 {
		t.Fatalf("merged config wrong: root %q state %q address %q uid %d", c.Root, c.State, c.GRPC.Address, c.GRPC.UID)
	}
	if strings.Join(c.DisabledPlugins, ",") != "a.b,c.d" {
		t.Fatalf("disabled plugins = %v", c.DisabledPlugins)
	}
	cfg, err := c.Decode(&plugin.Registration{Type: "io.containerd.test.v1", ID: "configured", Config: &testPluginConfig{Limit: 7}})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.(*testPluginConfig); got.Path != "/imported" || got.Limit != 7 {
		t.Fatalf("plugin config = %+v, want imported path over defaults", got)
	}
}

func TestLoadConfigImportCycle(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.toml", "version = 2\nimports = [\"b.toml\"]\nroot = \"/a\"\n")
	writeFile(t, dir, "b.toml", "version = 2\nimports = [\"a.toml\"]\nstate = \"/b\"\n")
	c := DefaultConfig()
	if err := LoadConfig(a, c); err != nil {
		t.Fatal(err)
	}
	if c.Root != "/a" || c.State != "/b" {
		t.Fatalf("root %q state %q", c.Root, c.State)
	}
}

func TestDefaultConfigRoundTrip(t *testing.T) {
	var first bytes.Buffer
	if err := DefaultConfig().Encode(&first); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(first.String(), `[plugins."io.containerd.test.v1.configured"]`) {
		t.Fatalf("default config lacks the plugin's section:\n%s", first.String())
	}
	path := writeFile(t, t.TempDir(), "config.toml", first.String())
	c := DefaultConfig()
	if err := LoadConfig(path, c); err != nil {
		t.Fatalf("default config does not load back: %v", err)
	}
	var second bytes.Buffer
	if err := c.Encode(&second); err != nil {
		t.Fatal(err)
	}
	if first.String() != second.String() {
		t.Fatalf("round trip changed the config:\n--- first\n%s\n--- second\n%s", first.String(), second.String())
	}
}

func TestMalformedConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		content string
		want    []string
	}{
		"syntax":       {"version = 2\nroot = \"/x\"\n[grpc\naddress = 1\n", []string{"line 4", "table name"}},
		"wrong type":   {"version = 2\n\noom_score = \"high\"\n", []string{"line 3", "oom_score"}},
		"version":      {"version = 3\n", []string{"unsupported config version 3"}},
		"bad oom":      {"version = 2\noom_score = 5000\n", []string{"oom_score"}},
		"bad format":   {"version = 2\n[debug]\nformat = \"xml\"\n", []string{"debug.format"}},
		"plugin value": {"version = 2\n[plugins.\"io.containerd.test.v1.configured\"]\nlimit = \"many\"\n", []string{"limit", "io.containerd.test.v1.configured"}},
	} {
		path := writeFile(t, dir, name+".toml", tc.content)
		c := DefaultConfig()
		err := LoadConfig(path, c)
		if err == nil {
			_, err = c.Decode(testConfigRegistration)
		}
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", name, err, w)
			}
		}
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: error %q is not InvalidArgument", name, err)
		}
	}
}

func TestMissingConfigFile(t *testing.T) {
	err := LoadConfig(filepath.Join(t.TempDir(), "absent.toml"), DefaultConfig())
	if !os.IsNotExist(errorsUnwrapAll(err)) {
		t.Fatalf("err = %v, want not-exist", err)
	}
}

func errorsUnwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

// The distribution's own config configures plugins this daemon lacks; it
// must load, with those sections reported as unknown.
func TestUnknownKeysReported(t *testing.T) {
	path := writeFile(t, t.TempDir(), "config.toml", `
version = 2
not_a_key = true
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
  [plugins."io.containerd.test.v1.configured"]
    path = "/p"
    typo = 1
`)
	c := DefaultConfig()
	if err := LoadConfig(path, c); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decode(testConfigRegistration); err != nil {
		t.Fatal(err)
	}
	got := c.Unknown(func(k string) bool { return k == testConfigRegistration.URI() })
	sort.Strings(got)
	want := []string{
		"not_a_key",
		`plugins."io.containerd.grpc.v1.cri" (no such plugin)`,
		`plugins."io.containerd.test.v1.configured".typo`,
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("unknown keys = %q, want %q", got, want)
	}
}

// As in containerd 1.6 and 2.x, the debug listener is off unless set, so
// that daemons on paths of their own do not collide on a default socket.
func TestDefaultConfigHasNoDebugListener(t *testing.T) {
	var out bytes.Buffer
	if err := DefaultConfig().Encode(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "[debug]\n  address = \"\"\n") {
		t.Fatalf("config default sets a debug address:\n%s", out.String())
	}
}
