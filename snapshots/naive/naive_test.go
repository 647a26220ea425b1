package naive

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/snapshots/testsuite"
)

func newTestSnapshotter(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
	s, err := NewSnapshotter(root)
	if err != nil {
		return nil, nil, err
	}
	return s, s.Close, nil
}

func TestNaive(t *testing.T) {
	testsuite.SnapshotterSuite(t, "naive", newTestSnapshotter)
}

func TestPlugin(t *testing.T) {
	var reg *plugin.Registration
	for _, r := range plugin.Registrations() {
		if r.URI() == "io.containerd.snapshotter.v1.naive" {
			reg = r
		}
	}
	if reg == nil {
		t.Fatal("naive snapshotter not registered")
	}
	ic := plugin.NewContext(context.Background(), reg, plugin.NewPluginSet(), t.TempDir(), t.TempDir())
	p := reg.Init(ic)
	s, err := p.Instance()
	if err != nil {
		t.Fatal(err)
	}
	defer s.(snapshots.Snapshotter).Close()
	if len(ic.Meta.Platforms) != 1 || ic.Meta.Platforms[0].OS != runtime.GOOS {
		t.Errorf("platforms %+v", ic.Meta.Platforms)
	}
	if _, err := os.Stat(filepath.Join(ic.Root, "metadata.db")); err != nil {
		t.Errorf("database not under the plugin root: %v", err)
	}
}
