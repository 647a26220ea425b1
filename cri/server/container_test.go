package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/images"
	"github.com/llitfkitfk/containerd/cri/spec"
	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/leases"
)

// The container lifecycle over the sandbox tests' fakes of the daemon's
// services (containers, snapshots, runtime), with the real stdio fifos.

// ctrImages resolves one image, "busybox".
type ctrImages struct{}

func (ctrImages) LocalResolve(ctx context.Context, ref string) (images.Image, error) {
	if ref != "busybox" {
		return images.Image{}, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
	}
	img := images.Image{ID: "sha256:busyboxid", References: []string{"docker.io/library/busybox:latest"}, ChainID: "sha256:busyboxchain"}
	img.Spec.Config.StopSignal = "SIGQUIT"
	img.Spec.Config.Labels = map[string]string{"from-image": "yes"}
	return img, nil
}

func (ctrImages) Snapshotter(string) string { return "overlayfs" }

// ctrLeases hands out leases and counts those not yet deleted.
type ctrLeases struct {
	leases.Manager
	live int
}

func (l *ctrLeases) Create(ctx context.Context, opts ...leases.Opt) (leases.Lease, error) {
	l.live++
	return leases.Lease{ID: fmt.Sprint("lease", l.live)}, nil
}

func (l *ctrLeases) Delete(ctx context.Context, lease leases.Lease, opts ...leases.DeleteOpt) error {
	l.live--
	return nil
}

type ctrEnv struct {
	*sandboxEnv
	leases  *ctrLeases
	sandbox string
	spec    containerSpecFunc
	events  *eventSubscriber
}

func newCtrEnv(t *testing.T) *ctrEnv {
	t.Helper()
	e := &ctrEnv{sandboxEnv: newSandboxEnv(t), leases: &ctrLeases{}}
	e.s.deps.Leases = e.leases
	e.spec = func(ctx context.Context, in spec.ContainerInput) (*specs.Spec, error) {
		return &specs.Spec{Version: "1.0.2", Process: &specs.Process{Args: in.Config.GetCommand()}}, nil
	}
	id, err := e.run(hostPod("pod"), "")
	if err != nil {
		t.Fatal(err)
	}
	e.sandbox = id
	e.events = e.s.events.subscribe(64)
	return e
}

func (e *ctrEnv) create(name string) (string, error) {
	resp, err := e.s.createContainer(e.ctx, &runtime.CreateContainerRequest{
		PodSandboxId: e.sandbox,
		Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: name},
			Image:    &runtime.ImageSpec{Image: "busybox"},
			Command:  []string{"sleep", "1000"},
			Labels:   map[string]string{"app": "x"},
			LogPath:  name + ".log",
		},
	}, ctrImages{}, e.spec)
	return resp.GetContainerId(), err
}

// nextEvent returns the next event of a container (the sandbox's own are
// skipped).
func (e *ctrEnv) nextEvent(t *testing.T, id string) runtime.ContainerEventType {
	t.Helper()
	for {
		select {
		case ev := <-e.events.ch:
			if ev.GetContainerId() == id {
				return ev.GetContainerEventType()
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event for %s", id)
		}
	}
}

func TestContainerLifecycle(t *testing.T) {
	e := newCtrEnv(t)
	id, err := e.create("app")
	if err != nil {
		t.Fatal(err)
	}
	if ev := e.nextEvent(t, id); ev != runtime.ContainerEventType_CONTAINER_CREATED_EVENT {
		t.Fatalf("event %v", ev)
	}
	rec, err := e.cs.Get(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Labels[store.KindLabel] != store.KindContainer || rec.Labels[store.SandboxIDLabel] != e.sandbox ||
		rec.Labels["app"] != "x" || rec.Labels["from-image"] != "yes" || rec.SnapshotKey != id || rec.SandboxID != e.sandbox {
		t.Errorf("record %+v", rec)
	}
	md, err := store.UnmarshalContainerMetadata(rec.Extensions[store.ContainerMetadataExtension].GetValue())
	if err != nil || md.ImageRef != "sha256:busyboxid" || md.StopSignal != "SIGQUIT" || md.Name != "app_pod_default_uid-pod_0" {
		t.Errorf("metadata %+v, %v", md, err)
	}
	if p := e.sn.parents[id]; p != "sha256:busyboxchain" {
		t.Errorf("snapshot parent %q", p)
	}
	if e.leases.live != 0 {
		t.Errorf("%d create leases left", e.leases.live)
	}
	if _, err := os.Stat(e.s.containerStatusFile(id)); err != nil {
		t.Errorf("status file: %v", err)
	}
	// The same name again is refused while the container exists.
	if _, err := e.create("app"); grpcCode(err) != codes.AlreadyExists {
		t.Errorf("second create of a name: %v", err)
	}

	if _, err := e.s.StartContainer(e.ctx, &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if ev := e.nextEvent(t, id); ev != runtime.ContainerEventType_CONTAINER_STARTED_EVENT {
		t.Fatalf("event %v", ev)
	}
	c, _ := e.s.containers.Get(id)
	if st := c.Status(); st.State() != runtime.ContainerState_CONTAINER_RUNNING || st.Pid == 0 {
		t.Fatalf("after start: %+v", st)
	}
	if _, err := e.s.StartContainer(e.ctx, &runtime.StartContainerRequest{ContainerId: id}); grpcCode(err) != codes.FailedPrecondition {
		t.Errorf("second start: %v", err)
	}

	for i := 0; i < 2; i++ { // stop is idempotent
		if _, err := e.s.StopContainer(e.ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: 5}); err != nil {
			t.Fatal(err)
		}
	}
	st := c.Status()
	// The fake task exits with 128+signal: the image's SIGQUIT.
	if st.State() != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 128+3 || st.Reason != reasonError {
		t.Errorf("after stop: %+v", st)
	}
	if ev := e.nextEvent(t, id); ev != runtime.ContainerEventType_CONTAINER_STOPPED_EVENT {
		t.Fatalf("event %v", ev)
	}

	if _, err := e.s.RemoveContainer(e.ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if ev := e.nextEvent(t, id); ev != runtime.ContainerEventType_CONTAINER_DELETED_EVENT {
		t.Fatalf("event %v", ev)
	}
	if _, err := e.cs.Get(e.ctx, id); !errdefs.IsNotFound(err) {
		t.Errorf("record after remove: %v", err)
	}
	if _, ok := e.sn.parents[id]; ok {
		t.Error("snapshot left after remove")
	}
	if _, err := os.Stat(e.s.containerRootDir(id)); !os.IsNotExist(err) {
		t.Errorf("container dir after remove: %v", err)
	}
	if _, err := e.s.containers.Get(id); !errdefs.IsNotFound(err) {
		t.Errorf("store after remove: %v", err)
	}
	// The name is free again.
	if _, err := e.create("app"); err != nil {
		t.Errorf("create after remove: %v", err)
	}
}

// Every failing step of a create undoes the steps before it: no record,
// snapshot, files or lease are left and the name is free.
func TestCreateContainerFailureCleansUp(t *testing.T) {
	e := newCtrEnv(t)
	snapshots := e.sn.count()

	if _, err := e.s.createContainer(e.ctx, &runtime.CreateContainerRequest{
		PodSandboxId: e.sandbox,
		Config:       &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "a"}, Image: &runtime.ImageSpec{Image: "nothere"}},
	}, ctrImages{}, e.spec); grpcCode(err) != codes.NotFound {
		t.Errorf("missing image: %v, want NotFound", err)
	}

	e.spec = func(context.Context, spec.ContainerInput) (*specs.Spec, error) {
		return nil, fmt.Errorf("bad spec: %w", errdefs.ErrInvalidArgument)
	}
	if _, err := e.create("a"); grpcCode(err) != codes.InvalidArgument {
		t.Errorf("spec failure: %v, want InvalidArgument", err)
	}
	if e.sn.count() != snapshots {
		t.Error("snapshot left by a failed create")
	}
	if e.leases.live != 0 {
		t.Errorf("%d leases left", e.leases.live)
	}
	if recs, _ := e.cs.List(e.ctx); len(recs) != 1 { // the sandbox's own
		t.Errorf("%d records after failed creates, want the sandbox's only", len(recs))
	}
	if entries, _ := os.ReadDir(filepath.Join(e.s.config.RootDir, "containers")); len(entries) != 0 {
		t.Errorf("container dirs left: %v", entries)
	}
	if n := len(e.s.containers.List()); n != 0 {
		t.Errorf("%d containers in the store", n)
	}

	for _, bad := range []*runtime.CreateContainerRequest{
		{PodSandboxId: e.sandbox},
		{PodSandboxId: e.sandbox, Config: &runtime.ContainerConfig{Image: &runtime.ImageSpec{Image: "busybox"}}},
		{PodSandboxId: e.sandbox, Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "x"}}},
	} {
		if _, err := e.s.createContainer(e.ctx, bad, ctrImages{}, e.spec); grpcCode(err) != codes.InvalidArgument {
			t.Errorf("%v: %v, want InvalidArgument", bad, err)
		}
	}
	if _, err := e.s.createContainer(e.ctx, &runtime.CreateContainerRequest{
		PodSandboxId: "nosuchpod",
		Config:       &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "a"}, Image: &runtime.ImageSpec{Image: "busybox"}},
	}, ctrImages{}, e.spec); grpcCode(err) != codes.NotFound {
		t.Errorf("unknown sandbox: %v, want NotFound", err)
	}

	// With the spec fixed the name can be used.
	e.spec = func(context.Context, spec.ContainerInput) (*specs.Spec, error) { return &specs.Spec{}, nil }
	if _, err := e.create("a"); err != nil {
		t.Errorf("create after the failures: %v", err)
	}
}

// A start that fails leaves the container exited with StartError and no
// task.
func TestStartContainerFailure(t *testing.T) {
	e := newCtrEnv(t)
	id, err := e.create("app")
	if err != nil {
		t.Fatal(err)
	}
	e.rt.mu.Lock()
	e.rt.failStart = true
	e.rt.mu.Unlock()
	if _, err := e.s.StartContainer(e.ctx, &runtime.StartContainerRequest{ContainerId: id}); err == nil {
		t.Fatal("start succeeded")
	}
	c, _ := e.s.containers.Get(id)
	st := c.Status()
	if st.State() != runtime.ContainerState_CONTAINER_EXITED || st.Reason != reasonStartError || st.ExitCode != exitCodeStartError || st.Message == "" {
		t.Errorf("after a failed start: %+v", st)
	}
	if _, err := e.rt.Get(e.ctx, id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("task after a failed start: %v", err)
	}
	if _, err := e.s.RemoveContainer(e.ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Errorf("remove: %v", err)
	}
}

// After a restart the containers come back from their records, status
// files and tasks: running stays running, an exit while the daemon was
// down is recorded and its task deleted, a vanished task is an Unknown
// exit, a created container is still created and can start.
func TestRecoverContainers(t *testing.T) {
	e := newCtrEnv(t)
	ids := map[string]string{}
	for _, name := range []string{"live", "exited", "vanished", "created"} {
		id, err := e.create(name)
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = id
		if name == "created" {
			continue
		}
		if _, err := e.s.StartContainer(e.ctx, &runtime.StartContainerRequest{ContainerId: id}); err != nil {
			t.Fatal(err)
		}
	}
	// While the daemon is down: one exits, one's task goes away.
	e.rt.mu.Lock()
	e.rt.tasks[ids["exited"]].exitWith(0)
	delete(e.rt.tasks, ids["vanished"])
	livePid := e.rt.tasks[ids["live"]].pid
	e.rt.mu.Unlock()

	s2 := e.service(e.s.config)
	s2.deps.Leases = e.leases
	if err := s2.recoverSandboxes(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := s2.recoverContainers(e.ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(s2.containers.List()); n != 4 {
		t.Fatalf("%d containers recovered, want 4", n)
	}
	get := func(name string) *store.Container {
		c, err := s2.containers.Get(ids[name])
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if st := get("live").Status(); st.State() != runtime.ContainerState_CONTAINER_RUNNING || st.Pid != livePid {
		t.Errorf("live: %+v", st)
	}
	if st := get("exited").Status(); st.State() != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 0 || st.Reason != reasonCompleted {
		t.Errorf("exited: %+v", st)
	}
	e.rt.mu.Lock()
	_, taskLeft := e.rt.tasks[ids["exited"]]
	e.rt.mu.Unlock()
	if taskLeft {
		t.Error("the exited container's task was not deleted")
	}
	select {
	case <-get("exited").Stopped():
	default:
		t.Error("an exited container's Stopped is open")
	}
	if st := get("vanished").Status(); st.State() != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != exitCodeUnknown || st.Reason != reasonUnknown {
		t.Errorf("vanished: %+v", st)
	}
	created := get("created")
	if st := created.Status(); st.State() != runtime.ContainerState_CONTAINER_CREATED || created.IO == nil {
		t.Errorf("created: %+v, io %v", st, created.IO)
	}
	if _, err := s2.StartContainer(e.ctx, &runtime.StartContainerRequest{ContainerId: ids["created"]}); err != nil {
		t.Errorf("starting a recovered created container: %v", err)
	}
	// The names are held again.
	if _, err := s2.createContainer(e.ctx, &runtime.CreateContainerRequest{
		PodSandboxId: e.sandbox,
		Config:       &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "exited"}, Image: &runtime.ImageSpec{Image: "busybox"}},
	}, ctrImages{}, e.spec); grpcCode(err) != codes.AlreadyExists {
		t.Errorf("recovered name not reserved: %v", err)
	}
}
