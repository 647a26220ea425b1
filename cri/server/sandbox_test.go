package server

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/services/tasks"
	"github.com/llitfkitfk/containerd/snapshots"
)

// The unit tests use host network and host IPC pods: a pod's own network
// namespace and /dev/shm tmpfs are mounts, which only the end-to-end runs
// in a private mount namespace make.

type sandboxEnv struct {
	s    *Service
	cs   *fakeContainers
	sn   *fakeSnapshotter
	rt   *fakeRuntime
	imgs *fakeImages
	net  *fakeCNI
	sp   *fakeSpec
	ctx  context.Context
}

func newSandboxEnv(t *testing.T) *sandboxEnv {
	t.Helper()
	cfg := config.Default()
	dir := t.TempDir()
	cfg.RootDir, cfg.StateDir = filepath.Join(dir, "root"), filepath.Join(dir, "state")
	cfg.Containerd.Runtimes["other"] = config.Runtime{Type: "io.containerd.other.v1", Path: "/opt/other-shim"}
	if err := cfg.Validate(func(string) {}); err != nil {
		t.Fatal(err)
	}
	e := &sandboxEnv{
		cs:   &fakeContainers{recs: map[string]containers.Container{}},
		sn:   &fakeSnapshotter{parents: map[string]string{}},
		rt:   &fakeRuntime{tasks: map[string]*fakeTask{}},
		imgs: &fakeImages{chainID: "sha256:chain"},
		net:  &fakeCNI{setups: map[string]string{}},
		sp:   &fakeSpec{},
		ctx:  withNamespace(context.Background()),
	}
	e.s = e.service(cfg)
	return e
}

// service returns a Service over the env's fakes (a second one stands
// for the daemon after a restart).
func (e *sandboxEnv) service(cfg *config.Config) *Service {
	sns := map[string]snapshots.Snapshotter{"overlayfs": e.sn}
	return &Service{
		config: cfg,
		deps: Deps{
			Containers:   e.cs,
			Tasks:        tasks.NewLocal(e.rt, e.cs, sns),
			Snapshotters: sns,
		},
		sandboxes:  store.New(store.SandboxKey),
		containers: store.New(store.ContainerKey),
		events:     newEventBroadcaster(),
		network:    e.net,
	}
}

func (e *sandboxEnv) run(cfg *runtime.PodSandboxConfig, handler string) (string, error) {
	return e.s.runSandbox(e.ctx, &runtime.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handler}, e.imgs, e.sp.make)
}

func hostPod(name string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: name, Namespace: "default", Uid: "uid-" + name, Attempt: 1},
		Hostname: "host-" + name,
		Labels:   map[string]string{"app": "web", "pod": name},
		DnsConfig: &runtime.DNSConfig{
			Servers: []string{"10.0.0.10", "10.0.0.11"}, Searches: []string{"svc.local", "local"}, Options: []string{"ndots:5"},
		},
		Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Ipc: runtime.NamespaceMode_NODE},
		}},
	}
}

func grpcCode(err error) codes.Code { return status.Code(errdefs.ToGRPC(err)) }

func TestRunPodSandbox(t *testing.T) {
	e := newSandboxEnv(t)
	id, err := e.run(hostPod("a"), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(id) != 64 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("id %q is not 64 hex digits", id)
	}
	rec, err := e.cs.Get(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Labels[store.KindLabel] != store.KindSandbox || rec.Labels["pod"] != "a" || rec.Labels["from-image"] != "yes" || rec.Labels["app"] != "web" {
		t.Errorf("labels %v: want kind, the pod's labels over the image's", rec.Labels)
	}
	if rec.Runtime.Name != config.DefaultRuntimeType || rec.Runtime.Options.GetTypeUrl() != runcOptionsTypeURL {
		t.Errorf("runtime %+v", rec.Runtime)
	}
	if rec.SnapshotKey != id || rec.Snapshotter != "overlayfs" || e.sn.parents[id] != "sha256:chain" {
		t.Errorf("snapshot %s/%s, parents %v", rec.Snapshotter, rec.SnapshotKey, e.sn.parents)
	}
	ext := rec.Extensions[store.SandboxMetadataExtension]
	md, err := store.UnmarshalSandboxMetadata(ext.GetValue())
	if ext.GetTypeUrl() != SandboxMetadataTypeURL || err != nil || md.ID != id || md.Config.GetHostname() != "host-a" {
		t.Errorf("metadata extension %s: %+v, %v", ext.GetTypeUrl(), md, err)
	}
	if len(e.imgs.asked) != 1 || e.imgs.asked[0] != config.DefaultSandboxImage+"@" {
		t.Errorf("images asked for %v", e.imgs.asked)
	}
	// The spec is given the sandbox's files; host IPC: no shm.
	in := e.sp.in[0]
	root := filepath.Join(e.s.config.RootDir, "sandboxes", id)
	if in.HostnamePath != filepath.Join(root, "hostname") || in.ResolvPath != filepath.Join(root, "resolv.conf") || in.ShmPath != "" || in.NetNSPath != "" {
		t.Errorf("spec input %+v", in)
	}
	for file, want := range map[string]string{
		"hostname":    "host-a\n",
		"resolv.conf": "search svc.local local\nnameserver 10.0.0.10\nnameserver 10.0.0.11\noptions ndots:5\n",
	} {
		if b, err := os.ReadFile(filepath.Join(root, file)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", file, b, err, want)
		}
	}
	host, _ := os.ReadFile("/etc/hosts")
	if b, err := os.ReadFile(filepath.Join(root, "hosts")); err != nil || string(b) != string(host) {
		t.Errorf("host network pod's hosts file is not the host's: %v", err)
	}

	resp, err := e.s.PodSandboxStatus(e.ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id[:12], Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	st := resp.GetStatus()
	if st.GetId() != id || st.GetState() != runtime.PodSandboxState_SANDBOX_READY || st.GetCreatedAt() == 0 ||
		st.GetMetadata().GetName() != "a" || st.GetNetwork().GetIp() != "" || st.GetLinux().GetNamespaces().GetOptions().GetNetwork() != runtime.NamespaceMode_NODE {
		t.Errorf("status %v", st)
	}
	var info struct {
		Pid         uint32              `json:"pid"`
		Status      string              `json:"processStatus"`
		RuntimeType string              `json:"runtimeType"`
		Spec        json.RawMessage     `json:"runtimeSpec"`
		Metadata    struct{ ID string } `json:"sandboxMetadata"`
	}
	if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil {
		t.Fatalf("info %q: %v", resp.GetInfo()["info"], err)
	}
	if info.Pid == 0 || info.Status != "running" || info.RuntimeType != config.DefaultRuntimeType || !strings.Contains(string(info.Spec), "/pause") || info.Metadata.ID != id {
		t.Errorf("info %+v", info)
	}
}

func TestRunPodSandboxValidation(t *testing.T) {
	e := newSandboxEnv(t)
	noUID := hostPod("x")
	noUID.Metadata.Uid = ""
	badHost := hostPod("x")
	badHost.Hostname = "h\n6.6.6.6 evil"
	badDNS := hostPod("x")
	badDNS.DnsConfig.Searches = []string{"a\nnameserver 6.6.6.6"}
	badPort := hostPod("x")
	badPort.PortMappings = []*runtime.PortMapping{{ContainerPort: 80, HostPort: 70000}}
	for name, cfg := range map[string]*runtime.PodSandboxConfig{
		"no config":   nil,
		"no metadata": {},
		"no uid":      noUID,
		"hostname":    badHost,
		"dns":         badDNS,
		"port":        badPort,
	} {
		_, err := e.run(cfg, "")
		if grpcCode(err) != codes.InvalidArgument {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := e.run(hostPod("x"), "nosuch"); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), `"nosuch"`) {
		t.Errorf("unknown handler: %v", err)
	}
	if len(e.cs.recs) != 0 || len(e.sp.in) != 0 {
		t.Error("a refused request made something")
	}
}

func TestRunPodSandboxNameReserved(t *testing.T) {
	e := newSandboxEnv(t)
	id, err := e.run(hostPod("a"), "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.run(hostPod("a"), "")
	if grpcCode(err) != codes.AlreadyExists || !strings.Contains(err.Error(), id) {
		t.Fatalf("same pod and attempt again: %v", err)
	}
	// Another attempt is another name.
	next := hostPod("a")
	next.Metadata.Attempt = 2
	if _, err := e.run(next, ""); err != nil {
		t.Fatal(err)
	}
}

// Every failure undoes what was done before it: nothing is left and the
// name is free again.
func TestRunPodSandboxFailureCleansUp(t *testing.T) {
	for _, step := range []string{"image", "spec", "create", "start"} {
		t.Run(step, func(t *testing.T) {
			e := newSandboxEnv(t)
			switch step {
			case "image":
				e.imgs.err = errors.New("no pause image")
			case "spec":
				e.sp.err = errors.New("bad spec")
			case "create":
				e.rt.failCreate = true
			case "start":
				e.rt.failStart = true
			}
			if _, err := e.run(hostPod("a"), ""); err == nil {
				t.Fatal("no error")
			}
			if len(e.cs.recs) != 0 || e.sn.count() != 0 || e.rt.count() != 0 || len(e.s.sandboxes.List()) != 0 {
				t.Errorf("left behind: records %d, snapshots %d, tasks %d, sandboxes %d",
					len(e.cs.recs), e.sn.count(), e.rt.count(), len(e.s.sandboxes.List()))
			}
			if entries, _ := os.ReadDir(filepath.Join(e.s.config.RootDir, "sandboxes")); len(entries) != 0 {
				t.Errorf("sandbox dirs left: %v", entries)
			}
			e.imgs.err, e.sp.err, e.rt.failCreate, e.rt.failStart = nil, nil, false, false
			if _, err := e.run(hostPod("a"), ""); err != nil {
				t.Fatalf("name not released: %v", err)
			}
		})
	}
}

func TestStopRemovePodSandbox(t *testing.T) {
	e := newSandboxEnv(t)
	id, err := e.run(hostPod("a"), "other")
	if err != nil {
		t.Fatal(err)
	}
	if opts := e.rt.created[0]; opts.Runtime != "/opt/other-shim" {
		t.Errorf("runtime_path not used: %q", opts.Runtime)
	}
	for i := 0; i < 2; i++ {
		if _, err := e.s.StopPodSandbox(e.ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("stop %d: %v", i, err)
		}
	}
	sb, _ := e.s.sandboxes.Get(id)
	if st := sb.Status(); st.State != store.SandboxNotReady || st.ExitStatus != 137 || st.Pid != 0 {
		t.Errorf("stopped: %+v", st)
	}
	select {
	case <-sb.Stopped():
	default:
		t.Error("Stopped not closed")
	}
	if e.rt.count() != 0 {
		t.Error("pause task not deleted")
	}
	if _, err := e.s.RemovePodSandbox(e.ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	if len(e.cs.recs) != 0 || e.sn.count() != 0 || len(e.s.sandboxes.List()) != 0 {
		t.Error("remove left something")
	}
	if _, err := os.Stat(filepath.Join(e.s.config.RootDir, "sandboxes", id)); !os.IsNotExist(err) {
		t.Errorf("sandbox dir: %v", err)
	}
	// Unknown sandboxes: stop and remove succeed, status is NotFound.
	if _, err := e.s.RemovePodSandbox(e.ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Errorf("remove again: %v", err)
	}
	if _, err := e.s.StopPodSandbox(e.ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Errorf("stop removed: %v", err)
	}
	if _, err := e.s.PodSandboxStatus(e.ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id}); status.Code(err) != codes.NotFound {
		t.Errorf("status of removed: %v", err)
	}
	if _, err := e.run(hostPod("a"), ""); err != nil {
		t.Errorf("name not freed by remove: %v", err)
	}
}

// Removing a running sandbox stops it first.
func TestRemoveRunningPodSandbox(t *testing.T) {
	e := newSandboxEnv(t)
	id, err := e.run(hostPod("a"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.RemovePodSandbox(e.ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	if e.rt.count() != 0 || len(e.cs.recs) != 0 {
		t.Error("task or record left")
	}
}

func TestHandleSandboxExit(t *testing.T) {
	e := newSandboxEnv(t)
	id, err := e.run(hostPod("a"), "")
	if err != nil {
		t.Fatal(err)
	}
	e.rt.tasks[id].exitWith(2)
	e.s.handleSandboxExit(context.Background(), id, 2, 12345)
	sb, _ := e.s.sandboxes.Get(id)
	if st := sb.Status(); st.State != store.SandboxNotReady || st.ExitStatus != 2 || st.ExitedAt.UnixNano() != 12345 {
		t.Errorf("%+v", st)
	}
	if e.rt.count() != 0 {
		t.Error("exited task not deleted")
	}
	// A second report (the stop path) keeps the first exit.
	e.s.handleSandboxExit(context.Background(), id, 9, 999)
	if st := sb.Status(); st.ExitStatus != 2 {
		t.Errorf("exit overwritten: %+v", st)
	}
	e.s.handleSandboxExit(context.Background(), "nosuch", 1, 1) // no panic
}

// A pause process that exits before RunPodSandbox returns is seen: its
// exit event came before the sandbox was in the store.
func TestRunPodSandboxPauseDiesAtOnce(t *testing.T) {
	e := newSandboxEnv(t)
	e.rt.exitOnStart = true
	id, err := e.run(hostPod("a"), "")
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := e.s.sandboxes.Get(id)
	if st := sb.Status(); st.State != store.SandboxNotReady || st.ExitStatus != 1 {
		t.Errorf("%+v", st)
	}
}

func TestListPodSandbox(t *testing.T) {
	e := newSandboxEnv(t)
	a, _ := e.run(hostPod("a"), "")
	b, _ := e.run(hostPod("b"), "")
	c, err := e.run(hostPod("c"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.StopPodSandbox(e.ctx, &runtime.StopPodSandboxRequest{PodSandboxId: c}); err != nil {
		t.Fatal(err)
	}
	list := func(f *runtime.PodSandboxFilter) []string {
		resp, err := e.s.ListPodSandbox(e.ctx, &runtime.ListPodSandboxRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, it := range resp.GetItems() {
			ids = append(ids, it.GetId())
		}
		return ids
	}
	has := func(got []string, want ...string) bool {
		if len(got) != len(want) {
			return false
		}
		m := map[string]bool{}
		for _, g := range got {
			m[g] = true
		}
		for _, w := range want {
			if !m[w] {
				return false
			}
		}
		return true
	}
	for name, tc := range map[string]struct {
		f    *runtime.PodSandboxFilter
		want []string
	}{
		"all":        {nil, []string{a, b, c}},
		"id":         {&runtime.PodSandboxFilter{Id: b}, []string{b}},
		"id prefix":  {&runtime.PodSandboxFilter{Id: a[:10]}, []string{a}},
		"unknown id": {&runtime.PodSandboxFilter{Id: "ffff0000"}, nil},
		"ready":      {&runtime.PodSandboxFilter{State: &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_READY}}, []string{a, b}},
		"not ready":  {&runtime.PodSandboxFilter{State: &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_NOTREADY}}, []string{c}},
		"label":      {&runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "web", "pod": "b"}}, []string{b}},
		"no match":   {&runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "db"}}, nil},
		"all of":     {&runtime.PodSandboxFilter{Id: a, LabelSelector: map[string]string{"pod": "b"}}, nil},
	} {
		if got := list(tc.f); !has(got, tc.want...) {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
}

// After a restart the store is rebuilt from the records and tasks: a
// running pause task is a ready sandbox, a dead one a stopped sandbox
// whose task is deleted.
func TestRecoverSandboxes(t *testing.T) {
	e := newSandboxEnv(t)
	live, err := e.run(hostPod("live"), "")
	if err != nil {
		t.Fatal(err)
	}
	dead, err := e.run(hostPod("dead"), "")
	if err != nil {
		t.Fatal(err)
	}
	gone, err := e.run(hostPod("gone"), "")
	if err != nil {
		t.Fatal(err)
	}
	e.rt.tasks[dead].exitWith(3)
	e.rt.tasks[gone].exitWith(0)
	delete(e.rt.tasks, gone)
	// A record that is not a sandbox, and one whose metadata is not ours.
	e.cs.recs["other"] = containers.Container{ID: "other", Labels: map[string]string{store.KindLabel: store.KindContainer}}
	bad := e.cs.recs[live]
	bad.ID = "bad"
	e.cs.recs["bad"] = bad

	s2 := e.service(e.s.config)
	if err := s2.recoverSandboxes(e.ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(s2.sandboxes.List()); n != 3 {
		t.Fatalf("%d sandboxes recovered, want 3", n)
	}
	for id, want := range map[string]store.SandboxState{live: store.SandboxReady, dead: store.SandboxNotReady, gone: store.SandboxNotReady} {
		sb, err := s2.sandboxes.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		st := sb.Status()
		if st.State != want || st.CreatedAt.IsZero() || sb.Metadata.Config.GetMetadata().GetUid() == "" {
			t.Errorf("%s: %+v", sb.Metadata.Config.GetMetadata().GetName(), st)
		}
	}
	sb, _ := s2.sandboxes.Get(live)
	if sb.Status().Pid != e.rt.tasks[live].pid {
		t.Error("pid not recovered")
	}
	if _, ok := e.rt.tasks[dead]; ok {
		t.Error("dead pause task not deleted")
	}
	// The names are taken again.
	if _, err := s2.runSandbox(e.ctx, &runtime.RunPodSandboxRequest{Config: hostPod("live")}, e.imgs, e.sp.make); grpcCode(err) != codes.AlreadyExists {
		t.Errorf("recovered name not reserved: %v", err)
	}
}

func TestSandboxFileContents(t *testing.T) {
	got := hostsFile("web-0", "10.88.0.7", []string{"fd00::7"})
	for _, want := range []string{"127.0.0.1\tlocalhost\n", "::1\tlocalhost", "10.88.0.7\tweb-0\n", "fd00::7\tweb-0\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("hosts lacks %q:\n%s", want, got)
		}
	}
	if got := hostsFile("h", "", nil); strings.Contains(got, "\th\n") {
		t.Errorf("no IP yet names the host:\n%s", got)
	}
	if got := resolvConf(&runtime.DNSConfig{Servers: []string{"1.1.1.1"}}); got != "nameserver 1.1.1.1\n" {
		t.Errorf("servers only: %q", got)
	}
	if got := resolvConf(&runtime.DNSConfig{}); got != "" {
		t.Errorf("empty: %q", got)
	}
}

// A sandbox's life reaches GetContainerEvents streams as containerd sends
// it: the container id is the sandbox's, with the sandbox's status.
func TestSandboxEvents(t *testing.T) {
	e := newSandboxEnv(t)
	sub := e.s.events.subscribe(16)
	defer e.s.events.unsubscribe(sub)
	id, err := e.run(hostPod("a"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.StopPodSandbox(e.ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.RemovePodSandbox(e.ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		typ   runtime.ContainerEventType
		state runtime.PodSandboxState
	}{
		{runtime.ContainerEventType_CONTAINER_CREATED_EVENT, runtime.PodSandboxState_SANDBOX_READY},
		{runtime.ContainerEventType_CONTAINER_STARTED_EVENT, runtime.PodSandboxState_SANDBOX_READY},
		{runtime.ContainerEventType_CONTAINER_STOPPED_EVENT, runtime.PodSandboxState_SANDBOX_NOTREADY},
		{runtime.ContainerEventType_CONTAINER_DELETED_EVENT, runtime.PodSandboxState_SANDBOX_NOTREADY},
	}
	for i, w := range want {
		select {
		case ev := <-sub.ch:
			if ev.GetContainerId() != id || ev.GetContainerEventType() != w.typ || ev.GetPodSandboxStatus().GetState() != w.state || ev.GetCreatedAt() == 0 {
				t.Errorf("event %d: %v %v %v, want %v %v", i, ev.GetContainerId(), ev.GetContainerEventType(), ev.GetPodSandboxStatus().GetState(), w.typ, w.state)
			}
		default:
			t.Fatalf("event %d (%v) not sent", i, w.typ)
		}
	}
	select {
	case ev := <-sub.ch:
		t.Errorf("extra event %v", ev.GetContainerEventType())
	default:
	}
}
