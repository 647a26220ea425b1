package v2

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/llitfkitfk/containerd/events/exchange"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/runtime"
)

func registration(t *testing.T) *plugin.Registration {
	for _, r := range plugin.Registrations() {
		if r.URI() == "io.containerd.runtime.v2.task" {
			return r
		}
	}
	t.Fatal("io.containerd.runtime.v2.task not registered")
	return nil
}

func TestPluginConfigRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(registration(t).Config); err != nil {
		t.Fatal(err)
	}
	var c Config
	if _, err := toml.Decode(buf.String(), &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Platforms) != 1 || c.SchedCore {
		t.Errorf("decoded %+v from\n%s", c, buf.String())
	}
	if _, err := toml.Decode("platforms = [\"linux/arm64/v8\"]\nsched_core = true\n", &c); err != nil || !c.SchedCore || c.Platforms[0] != "linux/arm64/v8" {
		t.Errorf("decoded %+v, %v", c, err)
	}
}

func TestPluginInit(t *testing.T) {
	r := registration(t)
	dir := t.TempDir()
	ic := plugin.NewContext(context.Background(), r, plugin.NewPluginSet(), filepath.Join(dir, "root"), filepath.Join(dir, "state"))
	ic.Config = &Config{Platforms: []string{"linux/amd64"}}
	ic.Events = exchange.NewExchange()
	p := r.Init(ic)
	instance, err := p.Instance()
	if err != nil {
		t.Fatal(err)
	}
	rt, ok := instance.(runtime.PlatformRuntime)
	if !ok || rt.ID() != "io.containerd.runtime.v2.task" {
		t.Fatalf("instance %T %v", instance, instance)
	}
	if len(ic.Meta.Platforms) != 1 || ic.Meta.Platforms[0].Architecture != "amd64" {
		t.Errorf("platforms = %v", ic.Meta.Platforms)
	}
	instance.(*TaskManager).Close()

	ic.Config = &Config{Platforms: []string{"bogus"}}
	if _, err := r.Init(ic).Instance(); err == nil {
		t.Error("bad platform accepted")
	}
}
