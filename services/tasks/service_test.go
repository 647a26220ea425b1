package tasks

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	api "github.com/llitfkitfk/containerd/api/services/tasks/v1"
	"github.com/llitfkitfk/containerd/api/types"
	tasktypes "github.com/llitfkitfk/containerd/api/types/task"
	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/metadata"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/runtime"
	"github.com/llitfkitfk/containerd/snapshots"
)

// fakeRuntime keeps tasks in memory, namespaced, and records how they
// were created.
type fakeRuntime struct {
	mu      sync.Mutex
	tasks   map[string]*fakeTask // ns/id
	created []runtime.CreateOpts
}

func (r *fakeRuntime) ID() string { return "io.containerd.runtime.v2.task" }

func (r *fakeRuntime) Create(ctx context.Context, id string, opts runtime.CreateOpts) (runtime.Task, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.tasks[ns+"/"+id]; ok {
		return nil, fmt.Errorf("task %s: %w", id, errdefs.ErrAlreadyExists)
	}
	t := &fakeTask{fakeProc: fakeProc{id: id, state: runtime.State{Status: runtime.CreatedStatus, Pid: 100}}, ns: ns, execs: map[string]*fakeProc{}}
	r.tasks[ns+"/"+id] = t
	r.created = append(r.created, opts)
	return t, nil
}

func (r *fakeRuntime) Get(ctx context.Context, id string) (runtime.Task, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.tasks[ns+"/"+id]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("task %s: %w", id, errdefs.ErrNotFound)
}

func (r *fakeRuntime) Tasks(ctx context.Context, all bool) ([]runtime.Task, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []runtime.Task
	for _, t := range r.tasks {
		if t.ns == ns {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b runtime.Task) int { return cmpString(a.ID(), b.ID()) })
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (r *fakeRuntime) Delete(ctx context.Context, id string) (*runtime.Exit, error) {
	t, err := r.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	ft := t.(*fakeTask)
	if ft.state.Status != runtime.StoppedStatus {
		return nil, fmt.Errorf("task %s is running: %w", id, errdefs.ErrFailedPrecondition)
	}
	r.mu.Lock()
	delete(r.tasks, ft.ns+"/"+id)
	r.mu.Unlock()
	return &runtime.Exit{Pid: ft.state.Pid, Status: ft.state.ExitStatus, Timestamp: ft.state.ExitedAt}, nil
}

type fakeProc struct {
	mu     sync.Mutex
	id     string
	state  runtime.State
	killed []uint32
	spec   *anypb.Any
	io     runtime.IO
	states int // State calls, which cost a shim round trip each
}

func (p *fakeProc) ID() string { return p.id }
func (p *fakeProc) State(context.Context) (runtime.State, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.states++
	return p.state, nil
}
func (p *fakeProc) Kill(_ context.Context, sig uint32, _ bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killed = append(p.killed, sig)
	p.state.Status = runtime.StoppedStatus
	p.state.ExitStatus = 128 + sig
	p.state.ExitedAt = time.Unix(1000, 0)
	return nil
}
func (p *fakeProc) ResizePty(context.Context, runtime.ConsoleSize) error { return nil }
func (p *fakeProc) CloseIO(context.Context) error                        { return nil }
func (p *fakeProc) Start(context.Context) (uint32, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state.Status = runtime.RunningStatus
	if p.state.Pid == 0 {
		p.state.Pid = 200
	}
	return p.state.Pid, nil
}
func (p *fakeProc) Wait(context.Context) (*runtime.Exit, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return &runtime.Exit{Pid: p.state.Pid, Status: p.state.ExitStatus, Timestamp: p.state.ExitedAt}, nil
}
func (p *fakeProc) Delete(context.Context) (*runtime.Exit, error) {
	return &runtime.Exit{Pid: p.state.Pid, Status: p.state.ExitStatus, Timestamp: p.state.ExitedAt}, nil
}

type fakeTask struct {
	fakeProc
	ns     string
	paused bool
	execs  map[string]*fakeProc
	update *anypb.Any
}

func (t *fakeTask) PID(context.Context) (uint32, error) { return t.state.Pid, nil }
func (t *fakeTask) Namespace() string                   { return t.ns }
func (t *fakeTask) Pause(context.Context) error {
	t.state.Status = runtime.PausedStatus
	return nil
}
func (t *fakeTask) Resume(context.Context) error {
	t.state.Status = runtime.RunningStatus
	return nil
}
func (t *fakeTask) Exec(_ context.Context, id string, opts runtime.ExecOpts) (runtime.ExecProcess, error) {
	if _, ok := t.execs[id]; ok {
		return nil, fmt.Errorf("exec %s: %w", id, errdefs.ErrAlreadyExists)
	}
	p := &fakeProc{id: id, spec: opts.Spec, io: opts.IO, state: runtime.State{Status: runtime.CreatedStatus}}
	t.execs[id] = p
	return p, nil
}
func (t *fakeTask) Pids(context.Context) ([]runtime.ProcessInfo, error) {
	return []runtime.ProcessInfo{{Pid: 100}, {Pid: 200, Info: &anypb.Any{TypeUrl: "info"}}}, nil
}
func (t *fakeTask) Checkpoint(context.Context, string, *anypb.Any) error {
	return errdefs.ErrNotImplemented
}
func (t *fakeTask) Update(_ context.Context, res *anypb.Any, _ map[string]string) error {
	t.update = res
	return nil
}
func (t *fakeTask) Process(_ context.Context, id string) (runtime.ExecProcess, error) {
	if p, ok := t.execs[id]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("exec %s: %w", id, errdefs.ErrNotFound)
}
func (t *fakeTask) Stats(context.Context) (*anypb.Any, error) {
	return &anypb.Any{TypeUrl: "io.containerd.cgroups.v1.Metrics", Value: []byte(t.id)}, nil
}

// fakeSnapshotter answers Mounts only.
type fakeSnapshotter struct {
	snapshots.Snapshotter
}

func (fakeSnapshotter) Mounts(_ context.Context, key string) ([]mount.Mount, error) {
	if key != "snap" {
		return nil, fmt.Errorf("snapshot %s: %w", key, errdefs.ErrNotFound)
	}
	return []mount.Mount{{Type: "bind", Source: "/snap", Options: []string{"rbind"}}}, nil
}

func setup(t *testing.T) (*fakeRuntime, containers.Store, api.TasksClient) {
	db, err := metadata.Open(context.Background(), filepath.Join(t.TempDir(), "meta.db"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rt := &fakeRuntime{tasks: map[string]*fakeTask{}}
	store := metadata.NewContainerStore(db)
	svc := &service{local: NewLocal(rt, store, map[string]snapshots.Snapshotter{"fake": fakeSnapshotter{}})}
	return rt, store, api.NewTasksClient(testutil.Serve(t, svc.Register))
}

var (
	spec    = &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec", Value: []byte(`{}`)}
	rtOpts  = &anypb.Any{TypeUrl: "containerd.runc.v1.Options", Value: []byte("c")}
	taskOpt = &anypb.Any{TypeUrl: "containerd.runc.v1.Options", Value: []byte("t")}
)

func createContainer(t *testing.T, store containers.Store, ctx context.Context, id, sn, key string) {
	t.Helper()
	_, err := store.Create(ctx, containers.Container{
		ID:          id,
		Runtime:     containers.RuntimeInfo{Name: "io.containerd.runc.v2", Options: rtOpts},
		Spec:        spec,
		Snapshotter: sn,
		SnapshotKey: key,
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCreate(t *testing.T) {
	rt, store, c := setup(t)
	ctx := namespaces.WithNamespace(context.Background(), "ns")
	createContainer(t, store, ctx, "c1", "fake", "snap")
	createContainer(t, store, ctx, "c2", "fake", "snap")
	createContainer(t, store, ctx, "c3", "gone", "snap")
	createContainer(t, store, ctx, "c4", "fake", "missing")

	// The client's mounts win, and the task's own options.
	resp, err := c.Create(ctx, &api.CreateTaskRequest{
		ContainerId: "c1",
		Rootfs:      []*types.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/a"}}},
		Stdin:       "/in", Stdout: "/out", Stderr: "/err", Terminal: true,
		Options:     taskOpt,
		RuntimePath: "/usr/bin/containerd-shim-runc-v2",
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.ContainerId != "c1" || resp.Pid != 100 {
		t.Fatalf("create response %v", resp)
	}
	opts := rt.created[0]
	if !proto.Equal(opts.Spec, spec) || !proto.Equal(opts.RuntimeOptions, rtOpts) || !proto.Equal(opts.TaskOptions, taskOpt) ||
		opts.Runtime != "/usr/bin/containerd-shim-runc-v2" ||
		opts.IO != (runtime.IO{Stdin: "/in", Stdout: "/out", Stderr: "/err", Terminal: true}) ||
		len(opts.Rootfs) != 1 || opts.Rootfs[0].Type != "overlay" || opts.Rootfs[0].Options[0] != "lowerdir=/a" {
		t.Fatalf("create opts %+v", opts)
	}

	// Without mounts, the container's snapshot's.
	if _, err := c.Create(ctx, &api.CreateTaskRequest{ContainerId: "c2"}); err != nil {
		t.Fatal(err)
	}
	opts = rt.created[1]
	if opts.Runtime != "io.containerd.runc.v2" || len(opts.Rootfs) != 1 || opts.Rootfs[0].Source != "/snap" {
		t.Fatalf("create opts from snapshot %+v", opts)
	}

	_, err = c.Create(ctx, &api.CreateTaskRequest{ContainerId: "c2"})
	testutil.WantCode(t, err, codes.AlreadyExists)
	_, err = c.Create(ctx, &api.CreateTaskRequest{ContainerId: "nope"})
	testutil.WantCode(t, err, codes.NotFound)
	_, err = c.Create(ctx, &api.CreateTaskRequest{ContainerId: "c3"})
	testutil.WantCode(t, err, codes.FailedPrecondition)
	_, err = c.Create(ctx, &api.CreateTaskRequest{ContainerId: "c4"})
	testutil.WantCode(t, err, codes.NotFound)
	_, err = c.Create(ctx, &api.CreateTaskRequest{ContainerId: "c4", Checkpoint: &types.Descriptor{Digest: "sha256:x"}})
	testutil.WantCode(t, err, codes.Unimplemented)
	_, err = c.Create(context.Background(), &api.CreateTaskRequest{ContainerId: "c1"})
	testutil.WantCode(t, err, codes.FailedPrecondition)
}

func TestLifecycle(t *testing.T) {
	rt, store, c := setup(t)
	ctx := namespaces.WithNamespace(context.Background(), "ns")
	createContainer(t, store, ctx, "c1", "", "")
	createContainer(t, store, ctx, "c2", "", "")
	for _, id := range []string{"c1", "c2"} {
		if _, err := c.Create(ctx, &api.CreateTaskRequest{ContainerId: id}); err != nil {
			t.Fatal(err)
		}
	}

	got, err := c.Get(ctx, &api.GetRequest{ContainerId: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Process; p.Id != "c1" || p.ContainerId != "c1" || p.Pid != 100 || p.Status != tasktypes.Status_CREATED ||
		p.ExitedAt == nil || !p.ExitedAt.AsTime().IsZero() {
		// As containerd, a process that has not exited has the zero time,
		// which clients read back as such; no timestamp reads as 1970.
		t.Fatalf("get %v", p)
	}
	task, err := rt.Get(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	ft := task.(*fakeTask)
	ft.mu.Lock()
	statesBefore := ft.states
	ft.mu.Unlock()
	start, err := c.Start(ctx, &api.StartRequest{ContainerId: "c1"})
	if err != nil || start.Pid != 100 {
		t.Fatalf("start %v %v", start, err)
	}
	// The pid is Start's own answer: asking for the state would cost a
	// second round trip to the shim.
	ft.mu.Lock()
	if ft.states != statesBefore {
		t.Errorf("start asked for the state %d times", ft.states-statesBefore)
	}
	ft.mu.Unlock()

	list, err := c.List(ctx, &api.ListTasksRequest{})
	if err != nil || len(list.Tasks) != 2 {
		t.Fatalf("list %v %v", list, err)
	}
	list, err = c.List(ctx, &api.ListTasksRequest{Filter: "status==running"})
	if err != nil || len(list.Tasks) != 1 || list.Tasks[0].Id != "c1" {
		t.Fatalf("list running %v %v", list, err)
	}
	_, err = c.List(ctx, &api.ListTasksRequest{Filter: "status=="})
	testutil.WantCode(t, err, codes.InvalidArgument)
	if list, _ := c.List(namespaces.WithNamespace(context.Background(), "other"), &api.ListTasksRequest{}); len(list.Tasks) != 0 {
		t.Fatalf("list in another namespace %v", list)
	}

	// An exec'd process.
	_, err = c.Exec(ctx, &api.ExecProcessRequest{ContainerId: "c1", Spec: spec})
	testutil.WantCode(t, err, codes.InvalidArgument)
	_, err = c.Exec(ctx, &api.ExecProcessRequest{ContainerId: "c1", ExecId: "e1"})
	testutil.WantCode(t, err, codes.InvalidArgument)
	if _, err := c.Exec(ctx, &api.ExecProcessRequest{ContainerId: "c1", ExecId: "e1", Spec: spec, Stdout: "/o"}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Exec(ctx, &api.ExecProcessRequest{ContainerId: "c1", ExecId: "e1", Spec: spec})
	testutil.WantCode(t, err, codes.AlreadyExists)
	_, err = c.Exec(ctx, &api.ExecProcessRequest{ContainerId: "nope", ExecId: "e1", Spec: spec})
	testutil.WantCode(t, err, codes.NotFound)
	if start, err := c.Start(ctx, &api.StartRequest{ContainerId: "c1", ExecId: "e1"}); err != nil || start.Pid != 200 {
		t.Fatalf("start exec %v %v", start, err)
	}
	if got, err := c.Get(ctx, &api.GetRequest{ContainerId: "c1", ExecId: "e1"}); err != nil || got.Process.Id != "e1" || got.Process.Status != tasktypes.Status_RUNNING {
		t.Fatalf("get exec %v %v", got, err)
	}
	_, err = c.Get(ctx, &api.GetRequest{ContainerId: "c1", ExecId: "e2"})
	testutil.WantCode(t, err, codes.NotFound)
	if _, err := c.Kill(ctx, &api.KillRequest{ContainerId: "c1", ExecId: "e1", Signal: 9}); err != nil {
		t.Fatal(err)
	}
	if w, err := c.Wait(ctx, &api.WaitRequest{ContainerId: "c1", ExecId: "e1"}); err != nil || w.ExitStatus != 137 {
		t.Fatalf("wait exec %v %v", w, err)
	}
	if d, err := c.DeleteProcess(ctx, &api.DeleteProcessRequest{ContainerId: "c1", ExecId: "e1"}); err != nil || d.Id != "e1" || d.Pid != 200 || d.ExitStatus != 137 {
		t.Fatalf("delete exec %v %v", d, err)
	}
	_, err = c.DeleteProcess(ctx, &api.DeleteProcessRequest{ContainerId: "c1"})
	testutil.WantCode(t, err, codes.InvalidArgument)

	if _, err := c.Pause(ctx, &api.PauseTaskRequest{ContainerId: "c1"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Get(ctx, &api.GetRequest{ContainerId: "c1"}); got.Process.Status != tasktypes.Status_PAUSED {
		t.Fatalf("after pause %v", got.Process)
	}
	if _, err := c.Resume(ctx, &api.ResumeTaskRequest{ContainerId: "c1"}); err != nil {
		t.Fatal(err)
	}
	pids, err := c.ListPids(ctx, &api.ListPidsRequest{ContainerId: "c1"})
	if err != nil || len(pids.Processes) != 2 || pids.Processes[1].Info.GetTypeUrl() != "info" {
		t.Fatalf("pids %v %v", pids, err)
	}
	_, err = c.Checkpoint(ctx, &api.CheckpointTaskRequest{ContainerId: "c1"})
	testutil.WantCode(t, err, codes.Unimplemented)
	if _, err := c.Update(ctx, &api.UpdateTaskRequest{ContainerId: "c1", Resources: rtOpts}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ResizePty(ctx, &api.ResizePtyRequest{ContainerId: "c1", Width: 80, Height: 24}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CloseIO(ctx, &api.CloseIORequest{ContainerId: "c1", Stdin: true}); err != nil {
		t.Fatal(err)
	}

	m, err := c.Metrics(ctx, &api.MetricsRequest{Filters: []string{"id==c2"}})
	if err != nil || len(m.Metrics) != 1 || m.Metrics[0].Id != "c2" || string(m.Metrics[0].Data.GetValue()) != "c2" || m.Metrics[0].Timestamp == nil {
		t.Fatalf("metrics %v %v", m, err)
	}
	if m, _ := c.Metrics(ctx, &api.MetricsRequest{}); len(m.Metrics) != 2 {
		t.Fatalf("all metrics %v", m)
	}

	// A running task cannot be deleted; a stopped one reports its exit.
	_, err = c.Delete(ctx, &api.DeleteTaskRequest{ContainerId: "c1"})
	testutil.WantCode(t, err, codes.FailedPrecondition)
	if _, err := c.Kill(ctx, &api.KillRequest{ContainerId: "c1", Signal: 15, All: true}); err != nil {
		t.Fatal(err)
	}
	w, err := c.Wait(ctx, &api.WaitRequest{ContainerId: "c1"})
	if err != nil || w.ExitStatus != 143 || !w.ExitedAt.AsTime().Equal(time.Unix(1000, 0)) {
		t.Fatalf("wait %v %v", w, err)
	}
	d, err := c.Delete(ctx, &api.DeleteTaskRequest{ContainerId: "c1"})
	if err != nil || d.Id != "c1" || d.Pid != 100 || d.ExitStatus != 143 || !d.ExitedAt.AsTime().Equal(time.Unix(1000, 0)) {
		t.Fatalf("delete %v %v", d, err)
	}
	for _, call := range []func() error{
		func() error { _, err := c.Get(ctx, &api.GetRequest{ContainerId: "c1"}); return err },
		func() error { _, err := c.Delete(ctx, &api.DeleteTaskRequest{ContainerId: "c1"}); return err },
		func() error { _, err := c.Kill(ctx, &api.KillRequest{ContainerId: "c1", Signal: 9}); return err },
		func() error { _, err := c.Wait(ctx, &api.WaitRequest{ContainerId: "c1"}); return err },
		func() error { _, err := c.Pause(ctx, &api.PauseTaskRequest{ContainerId: "c1"}); return err },
		func() error { _, err := c.ListPids(ctx, &api.ListPidsRequest{ContainerId: "c1"}); return err },
	} {
		testutil.WantCode(t, call(), codes.NotFound)
	}
}
