package server

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/cri/store"
)

func TestMakeContainerName(t *testing.T) {
	got := makeContainerName(
		&runtime.ContainerMetadata{Name: "app", Attempt: 3},
		&runtime.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "u1", Attempt: 1},
	)
	if want := "app_web_default_u1_3"; got != want {
		t.Fatalf("name %q, want %q", got, want)
	}
	// Another pod's container of the same name must not clash.
	other := makeContainerName(
		&runtime.ContainerMetadata{Name: "app", Attempt: 3},
		&runtime.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "u2", Attempt: 1},
	)
	if other == got {
		t.Fatalf("containers of two pods share the name %q", got)
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{
		"SIGTERM": syscall.SIGTERM, "term": syscall.SIGTERM, "9": syscall.SIGKILL,
		"SIGQUIT": syscall.SIGQUIT, "SIGRTMIN+1": 35, "SIGRTMAX-2": 62, "SIGRTMIN": 34,
	} {
		got, err := parseSignal(in)
		if err != nil || got != want {
			t.Errorf("parseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65", "SIGNOPE", "SIGRTMIN+40", "-1"} {
		if _, err := parseSignal(in); err == nil {
			t.Errorf("parseSignal(%q) succeeded", in)
		}
	}
}

func TestCRISignals(t *testing.T) {
	name, err := criStopSignal(runtime.Signal_SIGNAL_SIGRTMINPLUS1)
	if err != nil || name != "SIGRTMIN+1" {
		t.Fatalf("criStopSignal(SIGRTMINPLUS1) = %q, %v", name, err)
	}
	if sig, err := parseSignal(name); err != nil || sig != 35 {
		t.Fatalf("parseSignal(%q) = %v, %v", name, sig, err)
	}
	if name, err := criStopSignal(runtime.Signal_SIGNAL_RUNTIME_DEFAULT); err != nil || name != "" {
		t.Fatalf("default stop signal = %q, %v", name, err)
	}
	if _, err := criStopSignal(runtime.Signal(1000)); err == nil {
		t.Fatal("unknown CRI signal accepted")
	}
	for _, s := range []string{"SIGUSR1", "SIGRTMIN+1", "SIGRTMAX-3", "SIGTERM"} {
		n, _ := criStopSignal(toCRISignal(s))
		if n != s {
			t.Errorf("%s round trips to %q", s, n)
		}
	}
	if toCRISignal("") != runtime.Signal_SIGNAL_RUNTIME_DEFAULT || toCRISignal("bogus") != runtime.Signal_SIGNAL_RUNTIME_DEFAULT {
		t.Error("no or unknown signal is not RUNTIME_DEFAULT")
	}
	if toCRISignal("quit") != runtime.Signal_SIGNAL_SIGQUIT {
		t.Error("lower-case name without SIG not understood")
	}
}

func testContainer(t *testing.T, id, sandbox string, labels map[string]string, st store.ContainerStatus) *store.Container {
	t.Helper()
	c, err := store.NewContainer(store.ContainerMetadata{
		ID: id, Name: id + "-name", SandboxID: sandbox,
		Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: id}, Labels: labels},
	}, st, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMatchContainers(t *testing.T) {
	s := &Service{containers: store.New(store.ContainerKey), sandboxes: store.New(store.SandboxKey)}
	created := store.ContainerStatus{CreatedAt: 1}
	running := store.ContainerStatus{CreatedAt: 1, StartedAt: 2}
	exited := store.ContainerStatus{CreatedAt: 1, StartedAt: 2, FinishedAt: 3}
	for _, c := range []*store.Container{
		testContainer(t, "aaa111", "sb1longid", map[string]string{"app": "web", "tier": "front"}, running),
		testContainer(t, "aab222", "sb1longid", map[string]string{"app": "web"}, exited),
		testContainer(t, "bbb333", "sb2", map[string]string{"app": "db"}, created),
	} {
		if err := s.containers.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.sandboxes.Add(store.NewSandbox(store.SandboxMetadata{ID: "sb1longid", Name: "p"}, store.SandboxStatus{})); err != nil {
		t.Fatal(err)
	}
	ids := func(f containerFilter) string {
		var out []string
		for _, c := range s.matchContainers(f) {
			out = append(out, c.Metadata.ID)
		}
		return strings.Join(out, ",")
	}
	state := func(s runtime.ContainerState) *runtime.ContainerStateValue {
		return &runtime.ContainerStateValue{State: s}
	}
	for _, tc := range []struct {
		name string
		f    containerFilter
		want string
	}{
		{"none", containerFilter{}, "aaa111,aab222,bbb333"},
		{"full id", containerFilter{id: "aab222"}, "aab222"},
		{"unique prefix", containerFilter{id: "bb"}, "bbb333"},
		{"ambiguous prefix matches nothing", containerFilter{id: "aa"}, ""},
		{"unknown id", containerFilter{id: "zzz"}, ""},
		{"sandbox", containerFilter{sandboxID: "sb2"}, "bbb333"},
		{"sandbox id prefix", containerFilter{sandboxID: "sb1"}, "aaa111,aab222"},
		{"running", containerFilter{state: state(runtime.ContainerState_CONTAINER_RUNNING)}, "aaa111"},
		{"exited", containerFilter{state: state(runtime.ContainerState_CONTAINER_EXITED)}, "aab222"},
		{"created", containerFilter{state: state(runtime.ContainerState_CONTAINER_CREATED)}, "bbb333"},
		{"label", containerFilter{labels: map[string]string{"app": "web"}}, "aaa111,aab222"},
		{"two labels", containerFilter{labels: map[string]string{"app": "web", "tier": "front"}}, "aaa111"},
		{"label value differs", containerFilter{labels: map[string]string{"app": "cache"}}, ""},
		{"all at once", containerFilter{sandboxID: "sb1", labels: map[string]string{"app": "web"}, state: state(runtime.ContainerState_CONTAINER_EXITED)}, "aab222"},
	} {
		if got := ids(tc.f); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestContainerStatusReason(t *testing.T) {
	s := &Service{}
	for _, tc := range []struct {
		st     store.ContainerStatus
		state  runtime.ContainerState
		reason string
	}{
		{store.ContainerStatus{CreatedAt: 1}, runtime.ContainerState_CONTAINER_CREATED, ""},
		{store.ContainerStatus{CreatedAt: 1, StartedAt: 2}, runtime.ContainerState_CONTAINER_RUNNING, ""},
		{store.ContainerStatus{CreatedAt: 1, StartedAt: 2, FinishedAt: 3}, runtime.ContainerState_CONTAINER_EXITED, reasonCompleted},
		{store.ContainerStatus{CreatedAt: 1, StartedAt: 2, FinishedAt: 3, ExitCode: 2}, runtime.ContainerState_CONTAINER_EXITED, reasonError},
		{store.ContainerStatus{CreatedAt: 1, StartedAt: 2, FinishedAt: 3, ExitCode: 137, Reason: reasonOOMKilled}, runtime.ContainerState_CONTAINER_EXITED, reasonOOMKilled},
		{store.ContainerStatus{CreatedAt: 1, StartedAt: 2, Unknown: true}, runtime.ContainerState_CONTAINER_UNKNOWN, ""},
	} {
		got := s.criContainerStatus(testContainer(t, "c", "sb", nil, tc.st), nil)
		if got.GetState() != tc.state || got.GetReason() != tc.reason {
			t.Errorf("%+v: state %v reason %q, want %v %q", tc.st, got.GetState(), got.GetReason(), tc.state, tc.reason)
		}
	}
}

func TestCappedBuffer(t *testing.T) {
	b := &cappedBuffer{max: 10}
	for i := 0; i < 3; i++ {
		n, err := b.Write([]byte("abcdefg"))
		if n != 7 || err != nil {
			t.Fatalf("write %d: %d, %v (a full buffer must still accept writes)", i, n, err)
		}
	}
	if got := b.buf.String(); got != "abcdefgabc" {
		t.Fatalf("kept %q, want the first 10 bytes", got)
	}
	big := &cappedBuffer{max: execSyncMaxOutput}
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for i := 0; i < 20; i++ {
		big.Write(chunk)
	}
	if big.buf.Len() != 16<<20 {
		t.Fatalf("ExecSync output capped at %d bytes, want 16 MiB", big.buf.Len())
	}
}

var testNow = time.Unix(1700000000, 0)

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	// The shim names the type by its bare message name.
	return &anypb.Any{TypeUrl: string(proto.MessageName(m)), Value: b}
}

func TestFillCgroupStats(t *testing.T) {
	var st runtime.ContainerStats
	err := fillCgroupStats(&st, mustAny(t, &v1.Metrics{
		CPU: &v1.CPUStat{Usage: &v1.CPUUsage{Total: 12345}},
		Memory: &v1.MemoryStat{
			Usage:             &v1.MemoryEntry{Usage: 1000, Limit: 4000},
			TotalInactiveFile: 300, TotalRSS: 500, TotalPgFault: 7, TotalPgMajFault: 1,
		},
	}), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if st.Cpu.GetUsageCoreNanoSeconds().GetValue() != 12345 || st.Memory.GetWorkingSetBytes().GetValue() != 700 ||
		st.Memory.GetAvailableBytes().GetValue() != 3300 || st.Memory.GetRssBytes().GetValue() != 500 ||
		st.Memory.GetPageFaults().GetValue() != 7 || st.Memory.GetMajorPageFaults().GetValue() != 1 {
		t.Fatalf("v1: %v", &st)
	}

	st = runtime.ContainerStats{}
	err = fillCgroupStats(&st, mustAny(t, &v2.Metrics{
		CPU:    &v2.CPUStat{UsageUsec: 5},
		Memory: &v2.MemoryStat{Usage: 100, InactiveFile: 200, UsageLimit: 1 << 63},
	}), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if st.Cpu.GetUsageCoreNanoSeconds().GetValue() != 5000 || st.Memory.GetWorkingSetBytes().GetValue() != 0 || st.Memory.GetAvailableBytes() != nil {
		t.Fatalf("v2: %v", &st)
	}

	if err := fillCgroupStats(&st, &anypb.Any{TypeUrl: "example.com/Other"}, testNow); err == nil {
		t.Fatal("unknown metrics type accepted")
	}
}

func TestRuntimeConfigCgroupDriver(t *testing.T) {
	cfg := config.Default()
	s := &Service{config: cfg}
	got, err := s.RuntimeConfig(context.Background(), &runtime.RuntimeConfigRequest{})
	if err != nil || got.GetLinux().GetCgroupDriver() != runtime.CgroupDriver_CGROUPFS {
		t.Fatalf("default: %v, %v", got, err)
	}
	r := cfg.Containerd.Runtimes[cfg.Containerd.DefaultRuntimeName]
	r.Options = map[string]any{"SystemdCgroup": true}
	cfg.Containerd.Runtimes[cfg.Containerd.DefaultRuntimeName] = r
	got, err = s.RuntimeConfig(context.Background(), &runtime.RuntimeConfigRequest{})
	if err != nil || got.GetLinux().GetCgroupDriver() != runtime.CgroupDriver_SYSTEMD {
		t.Fatalf("SystemdCgroup: %v, %v", got, err)
	}
}

// statusNetwork is a network whose only answer is its status.
type statusNetwork struct{ err error }

func (n statusNetwork) Status() error { return n.err }

func TestUpdateRuntimeConfigRendersTemplate(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "tmpl")
	if err := os.WriteFile(tmpl, []byte(`{{.PodCIDR}}|{{range .PodCIDRRanges}}{{.}};{{end}}|{{range .Routes}}{{.}};{{end}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.CNI.ConfDir = filepath.Join(dir, "net.d")
	cfg.CNI.ConfTemplate = tmpl
	s := &Service{config: cfg, network: statusNetwork{err: os.ErrNotExist}}
	req := &runtime.UpdateRuntimeConfigRequest{RuntimeConfig: &runtime.RuntimeConfig{
		NetworkConfig: &runtime.NetworkConfig{PodCidr: "10.88.0.0/16, fd00::/64"},
	}}
	if _, err := s.UpdateRuntimeConfig(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(cfg.CNI.ConfDir, cniConfigFileName))
	if err != nil {
		t.Fatal(err)
	}
	if want := "10.88.0.0/16|10.88.0.0/16;fd00::/64;|0.0.0.0/0;::/0;"; string(b) != want {
		t.Fatalf("rendered %q, want %q", b, want)
	}
	entries, _ := os.ReadDir(cfg.CNI.ConfDir)
	if len(entries) != 1 {
		t.Fatalf("conf dir holds %d files, want only the config", len(entries))
	}

	req.RuntimeConfig.NetworkConfig.PodCidr = "not-a-cidr"
	if _, err := s.UpdateRuntimeConfig(context.Background(), req); err == nil {
		t.Fatal("bad pod CIDR accepted")
	}
}

func TestKernelAtLeast(t *testing.T) {
	for rel, want := range map[string]bool{
		"5.12.0": true, "6.1.0-18-amd64": true, "5.11.22": false, "4.19.0": false,
		"5.15rc1": true, "garbage": false, "": false, "10.0": true,
	} {
		if got := kernelAtLeast(rel, 5, 12); got != want {
			t.Errorf("kernelAtLeast(%q, 5, 12) = %v", rel, got)
		}
	}
}

func TestMergeResources(t *testing.T) {
	old := &runtime.ContainerResources{Linux: &runtime.LinuxContainerResources{
		CpuShares: 512, MemoryLimitInBytes: 1 << 20,
		HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 1}},
		Unified:        map[string]string{"a": "1"},
	}}
	got := mergeResources(old, &runtime.LinuxContainerResources{
		MemoryLimitInBytes: 2 << 20,
		HugepageLimits:     []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 2}},
		Unified:            map[string]string{"b": "2"},
	}).GetLinux()
	if got.GetCpuShares() != 512 || got.GetMemoryLimitInBytes() != 2<<20 {
		t.Errorf("scalars: %v", got)
	}
	if len(got.GetHugepageLimits()) != 1 || got.GetHugepageLimits()[0].GetLimit() != 2 {
		t.Errorf("hugepages: %v", got.GetHugepageLimits())
	}
	if got.GetUnified()["a"] != "1" || got.GetUnified()["b"] != "2" {
		t.Errorf("unified: %v", got.GetUnified())
	}
	if old.GetLinux().GetMemoryLimitInBytes() != 1<<20 {
		t.Error("the old status was changed in place")
	}
	if first := mergeResources(nil, &runtime.LinuxContainerResources{CpuQuota: 5}); first.GetLinux().GetCpuQuota() != 5 {
		t.Errorf("no old resources: %v", first)
	}
}
