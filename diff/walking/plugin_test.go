package walking

import (
	"context"
	"testing"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/diff"
	dt "github.com/llitfkitfk/containerd/diff/internal/difftest"
	"github.com/llitfkitfk/containerd/plugin"
)

type fakeMetadata struct{ cs content.Store }

func (f fakeMetadata) ContentStore() content.Store { return f.cs }

func initWalking(t *testing.T, md interface{}) (interface{}, error) {
	t.Helper()
	var reg *plugin.Registration
	for _, r := range plugin.Registrations() {
		if r.Type == plugin.DiffPlugin && r.ID == "walking" {
			reg = r
		}
	}
	if reg == nil {
		t.Fatal("walking differ not registered")
	}
	if len(reg.Requires) != 1 || reg.Requires[0] != plugin.MetadataPlugin {
		t.Errorf("requires %v, want the metadata plugin", reg.Requires)
	}
	set := plugin.NewPluginSet()
	mdReg := &plugin.Registration{Type: plugin.MetadataPlugin, ID: "fake", InitFn: func(*plugin.InitContext) (interface{}, error) { return md, nil }}
	if err := set.Add(mdReg.Init(plugin.NewContext(context.Background(), mdReg, set, t.TempDir(), t.TempDir()))); err != nil {
		t.Fatal(err)
	}
	ic := plugin.NewContext(context.Background(), reg, set, t.TempDir(), t.TempDir())
	p := reg.Init(ic)
	if p.Err() == nil && len(p.Meta.Platforms) == 0 {
		t.Error("no platform reported")
	}
	return p.Instance()
}

func TestPlugin(t *testing.T) {
	inst, err := initWalking(t, fakeMetadata{cs: dt.Store(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := inst.(diff.Applier); !ok {
		t.Errorf("%T is not an Applier", inst)
	}
	if _, ok := inst.(diff.Comparer); !ok {
		t.Errorf("%T is not a Comparer", inst)
	}
	if _, err := initWalking(t, struct{}{}); err == nil {
		t.Error("loaded over a metadata plugin without a content store")
	}
	if _, err := initWalking(t, fakeMetadata{}); !plugin.IsSkipPlugin(err) {
		t.Errorf("nil content store: err = %v, want a skip", err)
	}
}
