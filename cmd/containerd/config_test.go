package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/server"
)

// loadWith runs the app's flag parsing with args and returns the config
// loadConfig builds from them.
func loadWith(t *testing.T, args ...string) (*server.Config, error) {
	t.Helper()
	app := newApp()
	var (
		config *server.Config
		err    error
	)
	app.Action = func(c *cli.Context) error {
		config, err = loadConfig(c)
		return nil
	}
	if runErr := app.Run(append([]string{"containerd"}, args...)); runErr != nil {
		t.Fatal(runErr)
	}
	return config, err
}

func TestFlagsOverrideConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	err := os.WriteFile(path, []byte(`version = 2
root = "/from/file/root"
state = "/from/file/state"
[grpc]
  address = "/from/file.sock"
[debug]
  level = "warn"
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	c, err := loadWith(t, "-c", path, "--root", "/from/flag/root", "-a", "/from/flag.sock", "-l", "debug")
	if err != nil {
		t.Fatal(err)
	}
	if c.Root != "/from/flag/root" || c.GRPC.Address != "/from/flag.sock" || c.Debug.Level != "debug" {
		t.Fatalf("flags did not win: root %q address %q level %q", c.Root, c.GRPC.Address, c.Debug.Level)
	}
	if c.State != "/from/file/state" {
		t.Fatalf("state %q: an unset flag must leave the file's value", c.State)
	}
}

func TestMissingConfig(t *testing.T) {
	// An explicit file that is missing is an error...
	if _, err := loadWith(t, "--config", filepath.Join(t.TempDir(), "nope.toml")); err == nil {
		t.Fatal("missing explicit config accepted")
	}
	// ...but the default path need not exist on a fresh host.
	defer func(p string) { defaultConfigPath = p }(defaultConfigPath)
	defaultConfigPath = filepath.Join(t.TempDir(), "absent.toml")
	c, err := loadWith(t, "--root", "/r")
	if err != nil || c.Root != "/r" || c.State != server.DefaultStateDir {
		t.Fatalf("default config: %+v, %v", c, err)
	}
}

func TestMalformedConfigNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(path, []byte("version = 2\nroot = [\n"), 0o644)
	_, err := loadWith(t, "-c", path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line") {
		t.Fatalf("err = %v, want the file and line", err)
	}
}
