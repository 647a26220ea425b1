package server

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/internal/testutil/nritest"
	"github.com/llitfkitfk/containerd/nri"
)

// testPlugin is the NRI plugin of these tests: events keyed by name, and
// an environment variable and an annotation added to every container.
func testPlugin() *nritest.Plugin {
	return &nritest.Plugin{ByName: true, Adjust: func(c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate) {
		a := &api.ContainerAdjustment{}
		a.AddEnv("FROM_NRI", "yes")
		a.AddAnnotation("nri.test/seen", c.GetName())
		return a, nil
	}}
}

// withNRI starts an NRI for the service with p connected to it, and
// returns what p's Synchronize got.
func withNRI(t *testing.T, s *Service, p *nritest.Plugin) []string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nri") // short: a unix socket path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := *nri.DefaultConfig()
	cfg.SocketPath = filepath.Join(dir, "nri.sock")
	cfg.PluginPath, cfg.PluginConfigPath = filepath.Join(dir, "none"), filepath.Join(dir, "none")
	s.deps.NRI = nri.New(cfg)
	s.StartNRI(context.Background())
	t.Cleanup(s.deps.NRI.Stop)
	if !s.deps.NRI.Enabled() {
		t.Fatal("NRI did not start")
	}
	_, synced := p.Run(t, cfg.SocketPath, "test")
	s.nriBlockSync().Unblock()
	return synced
}

func TestNRIContainerLifecycle(t *testing.T) {
	e := newCtrEnv(t)
	p := testPlugin()
	if synced := withNRI(t, e.s, p); !slices.Equal(synced, []string{"pod:" + e.sandbox}) {
		t.Fatalf("Synchronize got %v, want the pod %s alone", synced, e.sandbox)
	}

	id, err := e.create("app")
	if err != nil {
		t.Fatal(err)
	}
	// The plugin's adjustment is in the container's spec.
	rec, err := e.cs.Get(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var sp specs.Spec
	if err := json.Unmarshal(rec.Spec.GetValue(), &sp); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(sp.Process.Env, "FROM_NRI=yes") || sp.Annotations["nri.test/seen"] != "app" {
		t.Fatalf("spec not adjusted: env %v annotations %v", sp.Process.Env, sp.Annotations)
	}
	if _, err := e.s.StartContainer(e.ctx, &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.StopContainer(e.ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.RemoveContainer(e.ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.StopPodSandbox(e.ctx, &runtime.StopPodSandboxRequest{PodSandboxId: e.sandbox}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.RemovePodSandbox(e.ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: e.sandbox}); err != nil {
		t.Fatal(err)
	}
	want := []string{"CreateContainer app", "StartContainer app", "StopContainer app", "RemoveContainer app", "StopPodSandbox pod", "RemovePodSandbox pod"}
	if got := p.Events(); !slices.Equal(got, want) {
		t.Fatalf("plugin got\n%v\nwant\n%v", got, want)
	}
}

// A container that exits on its own is reported stopped, once.
func TestNRIContainerExit(t *testing.T) {
	e := newCtrEnv(t)
	p := testPlugin()
	withNRI(t, e.s, p)
	id, err := e.create("app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.StartContainer(e.ctx, &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	c, _ := e.s.containers.Get(id)
	e.rt.tasks[id].exitWith(1)
	e.s.handleContainerExit(e.ctx, c, 1, time.Now(), "")
	p.Wait(t, "StopContainer app")
	if _, err := e.s.RemoveContainer(e.ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	want := []string{"CreateContainer app", "StartContainer app", "StopContainer app", "RemoveContainer app"}
	if got := p.Events(); !slices.Equal(got, want) {
		t.Fatalf("plugin got\n%v\nwant\n%v", got, want)
	}
}

// A plugin failing CreateContainer fails it and leaves nothing behind.
func TestNRICreateContainerRefused(t *testing.T) {
	e := newCtrEnv(t)
	p := testPlugin()
	p.FailCreate = true
	withNRI(t, e.s, p)
	records := e.cs.count()
	if _, err := e.create("app"); err == nil {
		t.Fatal("create succeeded though the plugin refused it")
	}
	if n := len(e.s.containers.List()); n != 0 {
		t.Errorf("%d containers in the store", n)
	}
	if n := e.cs.count(); n != records {
		t.Errorf("records: %d, want %d", n, records)
	}
	p.FailCreate = false
	if _, err := e.create("app"); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

// A plugin failing RunPodSandbox fails it; the pod is not in the store.
func TestNRIRunPodSandboxRefused(t *testing.T) {
	e := newSandboxEnv(t)
	p := testPlugin()
	p.FailRun = true
	withNRI(t, e.s, p)
	if _, err := e.run(hostPod("pod"), ""); err == nil {
		t.Fatal("RunPodSandbox succeeded though the plugin refused it")
	}
	if n := len(e.s.sandboxes.List()); n != 0 {
		t.Fatalf("%d sandboxes in the store", n)
	}
	if got, want := p.Events(), []string{"RunPodSandbox pod", "StopPodSandbox pod", "RemovePodSandbox pod"}; !slices.Equal(got, want) {
		t.Fatalf("plugin got %v, want %v", got, want)
	}
}

func TestNRIPodAndContainerConversion(t *testing.T) {
	cfg := &runtime.PodSandboxConfig{
		Metadata:    &runtime.PodSandboxMetadata{Name: "web", Uid: "u1", Namespace: "ns"},
		Labels:      map[string]string{"l": "1"},
		Annotations: map[string]string{"a": "2"},
		Linux:       &runtime.LinuxPodSandboxConfig{CgroupParent: "/kubepods/pod1"},
	}
	sb := store.NewSandbox(store.SandboxMetadata{ID: "sb1", Config: cfg, IP: "10.0.0.2", AdditionalIPs: []string{"fd00::2"}, RuntimeHandler: "runc"},
		store.SandboxStatus{State: store.SandboxReady, Pid: 42})
	pod := nriPodFromSpec(sb, &specs.Spec{Linux: &specs.Linux{
		CgroupsPath: "/kubepods/pod1/sb1",
		Namespaces:  []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: "/var/run/netns/x"}},
	}})
	if pod.GetId() != "sb1" || pod.GetName() != "web" || pod.GetUid() != "u1" || pod.GetNamespace() != "ns" ||
		pod.GetLabels()["l"] != "1" || pod.GetAnnotations()["a"] != "2" || pod.GetPid() != 42 ||
		!slices.Equal(pod.GetIps(), []string{"10.0.0.2", "fd00::2"}) || pod.GetRuntimeHandler() != "runc" ||
		pod.GetLinux().GetCgroupParent() != "/kubepods/pod1" || pod.GetLinux().GetCgroupsPath() != "/kubepods/pod1/sb1" ||
		len(pod.GetLinux().GetNamespaces()) != 1 || pod.GetLinux().GetNamespaces()[0].GetPath() != "/var/run/netns/x" {
		t.Errorf("pod %v", pod)
	}

	ccfg := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "app"},
		Image:    &runtime.ImageSpec{Image: "busybox"},
		Labels:   map[string]string{"l": "c"},
		Command:  []string{"sh"},
		Args:     []string{"-c", "true"},
		Envs:     []*runtime.KeyValue{{Key: "A", Value: []byte("1")}},
	}
	// Without a spec: what the config says.
	ctr := nriContainerFromSpec("c1", "sb1", ccfg, nil)
	if ctr.GetName() != "app" || ctr.GetPodSandboxId() != "sb1" || !slices.Equal(ctr.GetArgs(), []string{"sh", "-c", "true"}) ||
		!slices.Equal(ctr.GetEnv(), []string{"A=1"}) || ctr.GetLabels()["l"] != "c" || ctr.GetImage().GetName() != "busybox" {
		t.Errorf("container without spec %v", ctr)
	}
	// With one (and no seccomp: NRI's converter would not take nil).
	adj := 5
	ctr = nriContainerFromSpec("c1", "sb1", ccfg, &specs.Spec{
		Process: &specs.Process{Args: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}, OOMScoreAdj: &adj,
			User: specs.User{UID: 1, GID: 2}, Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 10, Soft: 5}}},
		Mounts:      []specs.Mount{{Destination: "/data", Source: "/src", Type: "bind"}},
		Annotations: map[string]string{"io.kubernetes.cri.container-name": "app"},
		Linux: &specs.Linux{CgroupsPath: "/kubepods/pod1/c1", Resources: &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: ptr(int64(1 << 20))}}},
	})
	if !slices.Equal(ctr.GetArgs(), []string{"/bin/sh"}) || !slices.Equal(ctr.GetEnv(), []string{"PATH=/bin"}) ||
		ctr.GetLinux().GetOomScoreAdj().GetValue() != 5 || ctr.GetUser().GetUid() != 1 || len(ctr.GetRlimits()) != 1 ||
		len(ctr.GetMounts()) != 1 || ctr.GetMounts()[0].GetDestination() != "/data" ||
		ctr.GetAnnotations()["io.kubernetes.cri.container-name"] != "app" ||
		ctr.GetLinux().GetCgroupsPath() != "/kubepods/pod1/c1" ||
		ctr.GetLinux().GetResources().GetMemory().GetLimit().GetValue() != 1<<20 {
		t.Errorf("container with spec %v", ctr)
	}
}

func ptr[T any](v T) *T { return &v }

func TestApplyAdjustment(t *testing.T) {
	sp := &specs.Spec{
		Process: &specs.Process{Args: []string{"old"}, Env: []string{"KEEP=1", "CHANGE=1", "DROP=1"}},
		Mounts:  []specs.Mount{{Destination: "/proc", Type: "proc"}, {Destination: "/gone", Type: "bind", Source: "/x"}},
		Linux:   &specs.Linux{},
	}
	a := &api.ContainerAdjustment{}
	a.SetArgs([]string{"new", "args"})
	a.AddEnv("CHANGE", "2")
	a.RemoveEnv("DROP")
	a.AddEnv("NEW", "3")
	a.AddAnnotation("k", "v")
	a.RemoveMount("/gone")
	a.AddMount(&api.Mount{Destination: "/data", Source: "/srv", Type: "bind", Options: []string{"rbind", "ro"}})
	a.SetLinuxMemoryLimit(1 << 30)
	a.SetLinuxCPUShares(256)
	a.SetLinuxCPUSetCPUs("0-1")
	a.AddLinuxUnified("memory.high", "1000000")
	a.SetLinuxOomScoreAdj(ptr(100))
	a.AddDevice(&api.LinuxDevice{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229})
	if err := applyAdjustment(sp, a); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sp.Process.Args, []string{"new", "args"}) {
		t.Errorf("args %v", sp.Process.Args)
	}
	env := slices.Clone(sp.Process.Env)
	slices.Sort(env)
	if !slices.Equal(env, []string{"CHANGE=2", "KEEP=1", "NEW=3"}) {
		t.Errorf("env %v", sp.Process.Env)
	}
	if sp.Annotations["k"] != "v" {
		t.Errorf("annotations %v", sp.Annotations)
	}
	var dests []string
	for _, m := range sp.Mounts {
		dests = append(dests, m.Destination)
	}
	slices.Sort(dests)
	if !slices.Equal(dests, []string{"/data", "/proc"}) {
		t.Errorf("mounts %v", dests)
	}
	r := sp.Linux.Resources
	if r == nil || r.Memory == nil || *r.Memory.Limit != 1<<30 || r.CPU == nil || *r.CPU.Shares != 256 ||
		r.CPU.Cpus != "0-1" || r.Unified["memory.high"] != "1000000" {
		t.Errorf("resources %+v", r)
	}
	if sp.Process.OOMScoreAdj == nil || *sp.Process.OOMScoreAdj != 100 {
		t.Errorf("oom score adj %v", sp.Process.OOMScoreAdj)
	}
	if len(sp.Linux.Devices) != 1 || sp.Linux.Devices[0].Path != "/dev/fuse" {
		t.Errorf("devices %v", sp.Linux.Devices)
	}
	if err := applyAdjustment(sp, nil); err != nil {
		t.Errorf("nil adjustment: %v", err)
	}
}

func TestResourcesRoundTrip(t *testing.T) {
	cri := &runtime.LinuxContainerResources{
		CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, CpusetCpus: "0", CpusetMems: "0",
		MemoryLimitInBytes: 1 << 28, MemorySwapLimitInBytes: 1 << 29,
		HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 1 << 21}},
		Unified:        map[string]string{"memory.high": "1"},
		OomScoreAdj:    7,
	}
	n := nriResourcesFromCRI(cri)
	back := criResourcesFromNRI(n, &runtime.LinuxContainerResources{OomScoreAdj: 7})
	if back.CpuPeriod != 100000 || back.CpuQuota != 50000 || back.CpuShares != 512 || back.CpusetCpus != "0" ||
		back.MemoryLimitInBytes != 1<<28 || back.MemorySwapLimitInBytes != 1<<29 || back.Unified["memory.high"] != "1" ||
		len(back.HugepageLimits) != 1 || back.HugepageLimits[0].Limit != 1<<21 || back.OomScoreAdj != 7 {
		t.Errorf("round trip: %v", back)
	}
	// What NRI leaves unset keeps the request's value.
	only := &api.LinuxResources{Memory: &api.LinuxMemory{Limit: api.Int64(1 << 27)}}
	got := criResourcesFromNRI(only, cri)
	if got.MemoryLimitInBytes != 1<<27 || got.CpuShares != 512 || got.CpusetCpus != "0" {
		t.Errorf("partial: %v", got)
	}
	if nriResourcesFromCRI(nil) != nil {
		t.Error("nil resources converted to something")
	}
}

func (f *fakeContainers) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.recs)
}
