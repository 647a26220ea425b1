package nri

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	nrilog "github.com/containerd/nri/pkg/log"
	"github.com/containerd/nri/pkg/stub"
	"github.com/sirupsen/logrus"

	"github.com/llitfkitfk/containerd/internal/testutil/nritest"
	"github.com/llitfkitfk/containerd/log"
)

// fakeDomain is a runtime with fixed pods and containers that records
// what plugins ask of it.
type fakeDomain struct {
	mu      sync.Mutex
	pods    []*api.PodSandbox
	ctrs    []*api.Container
	updates []string // container ids
	failOn  string   // UpdateContainer of this id fails
	evicted chan string
}

func (d *fakeDomain) ListPodSandboxes() []*api.PodSandbox { return d.pods }
func (d *fakeDomain) ListContainers() []*api.Container    { return d.ctrs }
func (d *fakeDomain) UpdateContainer(_ context.Context, u *api.ContainerUpdate) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if u.GetContainerId() == d.failOn {
		return errors.New("update refused")
	}
	d.updates = append(d.updates, u.GetContainerId())
	return nil
}
func (d *fakeDomain) EvictContainer(_ context.Context, id, _ string) error {
	d.evicted <- id
	return nil
}

func (d *fakeDomain) updated() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.updates)
}

// start runs an NRI on a socket in a temporary directory with d as its
// runtime, and connects p to it; it returns once p is synchronised, with
// p's stub and what p's Synchronize got.
func start(t *testing.T, d Domain, p *nritest.Plugin) (*NRI, stub.Stub, []string) {
	t.Helper()
	// Not t.TempDir: a unix socket path must stay short.
	dir, err := os.MkdirTemp("", "nri")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := *DefaultConfig()
	cfg.SocketPath = filepath.Join(dir, "nri.sock")
	cfg.PluginPath = filepath.Join(dir, "plugins")
	cfg.PluginConfigPath = filepath.Join(dir, "conf")
	n := New(cfg)
	if err := n.Start(d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	if !n.Enabled() {
		t.Fatal("started NRI is not enabled")
	}
	s, synced := p.Run(t, cfg.SocketPath, "recorder")
	n.BlockPluginSync().Unblock()
	return n, s, synced
}

func TestLifecycleEventsOnceAndInOrder(t *testing.T) {
	d := &fakeDomain{
		pods:    []*api.PodSandbox{{Id: "p0"}},
		ctrs:    []*api.Container{{Id: "c0", PodSandboxId: "p0", State: api.ContainerState_CONTAINER_RUNNING}},
		evicted: make(chan string, 1),
	}
	p := &nritest.Plugin{Adjust: func(c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate) {
		a := &api.ContainerAdjustment{}
		a.AddEnv("ADDED_BY", "recorder")
		u := &api.ContainerUpdate{ContainerId: "c0"}
		u.SetLinuxCPUShares(512)
		return a, []*api.ContainerUpdate{u}
	}}
	n, _, synced := start(t, d, p)
	if want := []string{"pod:p0", "ctr:c0"}; !slices.Equal(synced, want) {
		t.Fatalf("Synchronize got %v, want %v", synced, want)
	}

	ctx := context.Background()
	pod := &api.PodSandbox{Id: "p1", Name: "web"}
	ctr := &api.Container{Id: "c1", PodSandboxId: "p1", Name: "nginx"}
	if err := n.RunPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	adj, err := n.CreateContainer(ctx, pod, ctr)
	if err != nil {
		t.Fatal(err)
	}
	if env := adj.GetEnv(); len(env) != 1 || env[0].GetKey() != "ADDED_BY" || env[0].GetValue() != "recorder" {
		t.Fatalf("adjustment's env = %v, want ADDED_BY=recorder", env)
	}
	if got := d.updated(); !slices.Equal(got, []string{"c0"}) {
		t.Fatalf("updates carried out: %v, want the plugin's update of c0", got)
	}
	for _, step := range []func() error{
		func() error { return n.StartContainer(ctx, pod, ctr) },
		func() error { return n.StopContainer(ctx, pod, ctr) },
		func() error { return n.StopContainer(ctx, pod, ctr) }, // a second stop (the exit) says nothing
		func() error { return n.RemoveContainer(ctx, pod, ctr) },
		func() error { return n.RemoveContainer(ctx, pod, ctr) },
		func() error { return n.StopPodSandbox(ctx, pod) },
		func() error { return n.StopPodSandbox(ctx, pod) },
		func() error { return n.RemovePodSandbox(ctx, pod) },
		func() error { return n.RemovePodSandbox(ctx, pod) },
		// Never seen: nothing to tell.
		func() error { return n.StopContainer(ctx, pod, &api.Container{Id: "unknown"}) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"RunPodSandbox p1", "CreateContainer c1", "StartContainer c1", "StopContainer c1",
		"RemoveContainer c1", "StopPodSandbox p1", "RemovePodSandbox p1",
	}
	if got := p.Events(); !slices.Equal(got, want) {
		t.Fatalf("plugin got\n%v\nwant\n%v", got, want)
	}
}

func TestRemoveReportsStopFirst(t *testing.T) {
	p := &nritest.Plugin{}
	n, _, _ := start(t, &fakeDomain{}, p)
	ctx := context.Background()
	pod := &api.PodSandbox{Id: "p"}
	ctr := &api.Container{Id: "c", PodSandboxId: "p"}
	for _, err := range []error{
		n.RunPodSandbox(ctx, pod),
		func() error { _, err := n.CreateContainer(ctx, pod, ctr); return err }(),
		n.RemoveContainer(ctx, pod, ctr),
		n.RemovePodSandbox(ctx, pod),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"RunPodSandbox p", "CreateContainer c", "StopContainer c", "RemoveContainer c", "StopPodSandbox p", "RemovePodSandbox p"}
	if got := p.Events(); !slices.Equal(got, want) {
		t.Fatalf("plugin got %v, want %v", got, want)
	}
}

func TestPluginErrorFailsRunPodSandbox(t *testing.T) {
	n, _, _ := start(t, &fakeDomain{}, &nritest.Plugin{FailRun: true})
	if err := n.RunPodSandbox(context.Background(), &api.PodSandbox{Id: "p"}); err == nil {
		t.Fatal("RunPodSandbox succeeded though the plugin failed it")
	}
}

func TestUpdateContainerReturnsThePluginsResources(t *testing.T) {
	d := &fakeDomain{}
	p := &nritest.Plugin{OnUpdate: func(res *api.LinuxResources) []*api.ContainerUpdate {
		other := &api.ContainerUpdate{ContainerId: "other"}
		other.SetLinuxCPUShares(2)
		self := &api.ContainerUpdate{ContainerId: "c"}
		self.SetLinuxMemoryLimit(res.GetMemory().GetLimit().GetValue() / 2)
		return []*api.ContainerUpdate{other, self}
	}}
	n, _, _ := start(t, d, p)
	ctx := context.Background()
	pod, ctr := &api.PodSandbox{Id: "p"}, &api.Container{Id: "c", PodSandboxId: "p"}
	if _, err := n.CreateContainer(ctx, pod, ctr); err != nil {
		t.Fatal(err)
	}
	res, err := n.UpdateContainer(ctx, pod, ctr, &api.LinuxResources{Memory: &api.LinuxMemory{Limit: api.Int64(1 << 30)}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.GetMemory().GetLimit().GetValue(); got != 1<<29 {
		t.Fatalf("resources to set: memory limit %d, want the plugin's %d", got, 1<<29)
	}
	if got := d.updated(); !slices.Equal(got, []string{"other"}) {
		t.Fatalf("updates carried out: %v, want only the other container's", got)
	}
}

func TestUnsolicitedUpdates(t *testing.T) {
	d := &fakeDomain{failOn: "bad"}
	n, s, _ := start(t, d, &nritest.Plugin{})
	_ = n
	ok := &api.ContainerUpdate{ContainerId: "good"}
	ok.SetLinuxCPUShares(10)
	bad := &api.ContainerUpdate{ContainerId: "bad"}
	bad.SetLinuxCPUShares(10)
	failed, err := s.UpdateContainers([]*api.ContainerUpdate{ok, bad})
	if err == nil && len(failed) == 0 {
		t.Fatal("a failed update was not reported")
	}
	if got := d.updated(); !slices.Equal(got, []string{"good"}) {
		t.Fatalf("updates carried out: %v, want [good]", got)
	}
}

func TestOffIsANoop(t *testing.T) {
	ctx := context.Background()
	pod, ctr := &api.PodSandbox{Id: "p"}, &api.Container{Id: "c"}
	disabled := New(Config{Disable: true})
	if err := disabled.Start(&fakeDomain{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*NRI{nil, disabled} {
		if n.Enabled() {
			t.Fatal("enabled")
		}
		n.BlockPluginSync().Unblock()
		if err := n.RunPodSandbox(ctx, pod); err != nil {
			t.Fatal(err)
		}
		if adj, err := n.CreateContainer(ctx, pod, ctr); adj != nil || err != nil {
			t.Fatalf("CreateContainer = %v, %v", adj, err)
		}
		if err := n.RemoveContainer(ctx, pod, ctr); err != nil {
			t.Fatal(err)
		}
		n.Stop()
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{SocketPath: ""},
		{SocketPath: "/s", PluginRequestTimeout: "soon"},
		{SocketPath: "/s", PluginRegistrationTimeout: "-1s"},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default: %v", err)
	}
	if err := (Config{DisableConnections: true}).Validate(); err != nil {
		t.Errorf("no socket, connections disabled: %v", err)
	}
}

// The library's logging goes through the daemon's logger as module nri;
// its report that WASM plugins are not built in is not an error.
func TestLibraryLogging(t *testing.T) {
	var buf bytes.Buffer
	l := logrus.New()
	l.SetOutput(&buf)
	l.SetLevel(logrus.InfoLevel)
	ctx := log.WithLogger(context.Background(), logrus.NewEntry(l))
	nrilog.Errorf(ctx, "failed to initialize WASM support: %v", adaptation.ErrWasmDisabled)
	if buf.Len() != 0 {
		t.Errorf("WASM left out logged at info or above: %s", buf.String())
	}
	nrilog.Errorf(ctx, "plugin %s failed: %v", "x", errors.New("boom"))
	if out := buf.String(); !strings.Contains(out, "level=error") || !strings.Contains(out, "module=containerd/nri") || !strings.Contains(out, "boom") {
		t.Errorf("an error logged as %q", out)
	}
}
