package client

import (
	"context"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	tasksapi "github.com/llitfkitfk/containerd/api/services/tasks/v1"
	"github.com/llitfkitfk/containerd/api/types/runc/options"
	tasktypes "github.com/llitfkitfk/containerd/api/types/task"
	"github.com/llitfkitfk/containerd/errdefs"
)

// fakeTasks is a tasks service with one task, "t1", whose init process
// exits when killed (with 128+signal, as runc reports) or, with
// exitOnStart, as soon as it starts; like a shim it keeps the exit
// status until the task is deleted.
type fakeTasks struct {
	tasksapi.UnimplementedTasksServer

	mu          sync.Mutex
	status      tasktypes.Status
	exitCode    uint32
	exited      chan struct{}
	exitOnStart bool
	kills       []*tasksapi.KillRequest
	deletes     int
	gets        int
}

func newFakeTasks() *fakeTasks {
	return &fakeTasks{status: tasktypes.Status_CREATED, exited: make(chan struct{})}
}

func (f *fakeTasks) exit(code uint32) {
	if f.status != tasktypes.Status_STOPPED {
		f.status, f.exitCode = tasktypes.Status_STOPPED, code
		close(f.exited)
	}
}

func (f *fakeTasks) Start(ctx context.Context, r *tasksapi.StartRequest) (*tasksapi.StartResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = tasktypes.Status_RUNNING
	if f.exitOnStart {
		f.exit(3)
	}
	return &tasksapi.StartResponse{Pid: 42}, nil
}

func (f *fakeTasks) Wait(ctx context.Context, r *tasksapi.WaitRequest) (*tasksapi.WaitResponse, error) {
	select {
	case <-f.exited:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return &tasksapi.WaitResponse{ExitStatus: f.exitCode}, nil
}

func (f *fakeTasks) Kill(ctx context.Context, r *tasksapi.KillRequest) (*emptypb.Empty, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kills = append(f.kills, r)
	if r.GetExecId() == "" {
		f.exit(128 + r.GetSignal())
	}
	return &emptypb.Empty{}, nil
}

func (f *fakeTasks) Get(ctx context.Context, r *tasksapi.GetRequest) (*tasksapi.GetResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	return &tasksapi.GetResponse{Process: &tasktypes.Process{Id: "t1", Pid: 42, Status: f.status, ExitStatus: f.exitCode}}, nil
}

func (f *fakeTasks) Delete(ctx context.Context, r *tasksapi.DeleteTaskRequest) (*tasksapi.DeleteResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes++
	return &tasksapi.DeleteResponse{Id: "t1", ExitStatus: f.exitCode}, nil
}

func (f *fakeTasks) ListPids(ctx context.Context, r *tasksapi.ListPidsRequest) (*tasksapi.ListPidsResponse, error) {
	b, _ := proto.Marshal(&options.ProcessDetails{ExecId: "e1"})
	return &tasksapi.ListPidsResponse{Processes: []*tasktypes.ProcessInfo{
		{Pid: 42},
		{Pid: 43, Info: &anypb.Any{TypeUrl: "containerd.runc.v1.ProcessDetails", Value: b}},
	}}, nil
}

// fakeTaskClient serves f in process and returns the client's task t1.
func fakeTaskClient(t *testing.T, f *fakeTasks) *task {
	t.Helper()
	l := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	tasksapi.RegisterTasksServer(srv, f)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///fake",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return l.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c, err := NewWithConn(conn, WithDefaultNamespace("test"))
	if err != nil {
		t.Fatal(err)
	}
	return &task{client: c, id: "t1"}
}

func receive(t *testing.T, c <-chan ExitStatus) ExitStatus {
	t.Helper()
	select {
	case s := <-c:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no exit status")
	}
	panic("unreachable")
}

// A process that exits as it starts is still reported to the Wait asked
// before Start.
func TestWaitBeforeStartSeesFastExit(t *testing.T) {
	f := newFakeTasks()
	f.exitOnStart = true
	tk := fakeTaskClient(t, f)
	ctx := context.Background()
	exited, err := tk.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if s := receive(t, exited); s.ExitCode() != 3 || s.Error() != nil {
		t.Fatalf("exit status %+v", s)
	}
	if tk.Pid() != 42 {
		t.Fatalf("pid %d after start", tk.Pid())
	}
}

// A wait cut short reports the unknown exit status and why.
func TestWaitCancelled(t *testing.T) {
	tk := fakeTaskClient(t, newFakeTasks())
	ctx, cancel := context.WithCancel(context.Background())
	exited, _ := tk.Wait(ctx)
	cancel()
	s := receive(t, exited)
	if s.ExitCode() != UnknownExitStatus || !errdefs.IsCanceled(s.Error()) {
		t.Fatalf("exit status %+v, want %d and cancelled", s, UnknownExitStatus)
	}
}

func TestKillOptions(t *testing.T) {
	f := newFakeTasks()
	tk := fakeTaskClient(t, f)
	ctx := context.Background()
	if err := tk.Kill(ctx, syscall.SIGUSR1, WithKillExecID("e1")); err != nil {
		t.Fatal(err)
	}
	if err := tk.Kill(ctx, syscall.SIGTERM, WithKillAll); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.kills) != 2 ||
		f.kills[0].GetExecId() != "e1" || f.kills[0].GetSignal() != uint32(syscall.SIGUSR1) || f.kills[0].GetAll() ||
		f.kills[1].GetExecId() != "" || f.kills[1].GetSignal() != uint32(syscall.SIGTERM) || !f.kills[1].GetAll() {
		t.Fatalf("kill requests %v", f.kills)
	}
}

// A running task is not deleted (nothing is asked of the daemon);
// WithProcessKill kills all of it, waits for the exit, then deletes.
func TestDeleteRunningTask(t *testing.T) {
	f := newFakeTasks()
	tk := fakeTaskClient(t, f)
	ctx := context.Background()
	if err := tk.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Delete(ctx); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("delete of a running task: %v, want failed precondition", err)
	}
	f.mu.Lock()
	deletes := f.deletes
	f.mu.Unlock()
	if deletes != 0 {
		t.Fatal("a running task's delete reached the daemon")
	}
	s, err := tk.Delete(ctx, WithProcessKill)
	if err != nil || s.ExitCode() != 128+9 {
		t.Fatalf("delete with kill: %+v, %v; want exit code 137", s, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.kills) != 1 || f.kills[0].GetSignal() != uint32(syscall.SIGKILL) || !f.kills[0].GetAll() || f.deletes != 1 {
		t.Fatalf("kills %v, deletes %d", f.kills, f.deletes)
	}
}

func TestPidsExecIDs(t *testing.T) {
	tk := fakeTaskClient(t, newFakeTasks())
	pids, err := tk.Pids(context.Background())
	if err != nil || len(pids) != 2 || pids[0] != (ProcessInfo{Pid: 42}) || pids[1] != (ProcessInfo{Pid: 43, ExecID: "e1"}) {
		t.Fatalf("pids %+v, %v", pids, err)
	}
}

// A task whose exit a Wait has seen is deleted without asking its state
// first: `ctr run` pays one call less for each container.
func TestDeleteAfterWaitAsksNoStatus(t *testing.T) {
	f := newFakeTasks()
	f.exitOnStart = true
	tk := fakeTaskClient(t, f)
	ctx := context.Background()
	exited, err := tk.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Start(ctx); err != nil {
		t.Fatal(err)
	}
	receive(t, exited)
	s, err := tk.Delete(ctx)
	if err != nil || s.ExitCode() != 3 {
		t.Fatalf("delete: %+v, %v", s, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gets != 0 || f.deletes != 1 {
		t.Fatalf("%d status calls, %d deletes; want 0 and 1", f.gets, f.deletes)
	}
}
