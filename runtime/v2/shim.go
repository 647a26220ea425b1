package v2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/api/convert"
	taskapi "github.com/llitfkitfk/containerd/api/runtime/task/v2"
	tasktypes "github.com/llitfkitfk/containerd/api/types/task"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/identifiers"
	"github.com/llitfkitfk/containerd/runtime"
	"github.com/llitfkitfk/containerd/sys"
)

// shimTask is a task served by its own shim over ttrpc.
type shimTask struct {
	bundle   *bundle
	binary   *shimBinary
	endpoint *endpoint
	logs     io.Closer // stops copying the shim's log
	client   *ttrpc.Client
	task     taskapi.TaskService

	shimPid uint32
	// child is set when the shim is this process's child, as it is when
	// the daemon is a child subreaper, so that it must be reaped here.
	child    bool
	procs    *shimProcs
	reapOnce sync.Once

	mu sync.Mutex
	// live is set while the task is listed and its shim's disconnection
	// would mean the shim died; Delete and Close clear it first.
	live bool
	// closed is set once the connection is gone.
	closed bool

	// exited is set once the init process is known to have exited, so its
	// /tasks/exit has been published already.
	exited atomic.Bool
	// pid is the init process's, once known.
	pid atomic.Uint32
}

var _ runtime.Task = (*shimTask)(nil)

// arm marks the task live, unless the connection has already gone.
func (s *shimTask) arm() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.live = true
	return true
}

// detach makes a later disconnection deliberate rather than a death.
func (s *shimTask) detach() {
	s.mu.Lock()
	s.live = false
	s.mu.Unlock()
}

// disconnected records the end of the connection and reports whether the
// shim died while the task was live.
func (s *shimTask) disconnected() (died bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	died = s.live
	s.live = false
	return died
}

// reap lets go of this task's hold on its shim process, once its
// connection is closed and the shim is gone or going. The shim is reaped
// when no task holds it any more (see shimProcs).
func (s *shimTask) reap() {
	if !s.child {
		return
	}
	s.reapOnce.Do(func() { s.procs.release(s.shimPid) })
}

// shimProcs counts, for each shim process that is this process's child (as
// shims are when the daemon is a child subreaper), the tasks it serves, so
// that a shim serving a group of tasks is reaped once, after its last task
// let go. Only then: a pid that is our child cannot be reused before we
// reap it, so the wait cannot take another process's status, and a shim
// started later with the same pid is not taken for this one.
type shimProcs struct {
	mu   sync.Mutex
	refs map[uint32]int
}

func (p *shimProcs) hold(pid uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refs == nil {
		p.refs = map[uint32]int{}
	}
	p.refs[pid]++
}

// release drops a hold on pid and, with the last, reaps it once it exits.
func (p *shimProcs) release(pid uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refs[pid]--; p.refs[pid] > 0 {
		return
	}
	delete(p.refs, pid)
	if sys.Reaping() {
		// The daemon's reaper takes it as it takes every orphan; a wait
		// here could take the status of a child started later with the
		// pid it freed.
		return
	}
	go unix.Wait4(int(pid), nil, 0, nil)
}

// held reports how many tasks hold pid.
func (p *shimProcs) held(pid uint32) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refs[pid]
}

// isChild reports whether pid's parent is this process.
func isChild(pid uint32) bool {
	if pid == 0 {
		return false
	}
	data, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/stat")
	if err != nil {
		return false
	}
	// The command name, in parentheses, may hold spaces; the parent's pid
	// is the second field after it.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return false
	}
	fields := strings.Fields(string(data[i+1:]))
	return len(fields) > 1 && fields[1] == strconv.Itoa(os.Getpid())
}

// shimErr maps an error from a shim call to the domain's: ttrpc carries
// gRPC status codes, and a closed connection means the task is gone.
func shimErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ttrpc.ErrClosed):
		return fmt.Errorf("shim disconnected: %w", errdefs.ErrNotFound)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return errdefs.FromGRPC(err)
}

func (s *shimTask) ID() string        { return s.bundle.id }
func (s *shimTask) Namespace() string { return s.bundle.namespace }

// PID returns the init process's pid, as the shim reported it on create
// or, for a task taken back after a restart, on connect: a pid does not
// change over the process's life.
func (s *shimTask) PID(ctx context.Context) (uint32, error) {
	if pid := s.pid.Load(); pid != 0 {
		return pid, nil
	}
	resp, err := s.task.Connect(ctx, &taskapi.ConnectRequest{Id: s.ID()})
	if err != nil {
		return 0, shimErr(err)
	}
	s.pid.Store(resp.GetTaskPid())
	return resp.GetTaskPid(), nil
}

func (s *shimTask) State(ctx context.Context) (runtime.State, error) {
	st, err := state(ctx, s, "")
	if err == nil && st.Status == runtime.StoppedStatus {
		s.exited.Store(true)
	}
	return st, err
}

func (s *shimTask) Start(ctx context.Context) (uint32, error) {
	resp, err := s.task.Start(ctx, &taskapi.StartRequest{Id: s.ID()})
	if err != nil {
		return 0, shimErr(err)
	}
	return resp.GetPid(), nil
}

func (s *shimTask) Kill(ctx context.Context, signal uint32, all bool) error {
	_, err := s.task.Kill(ctx, &taskapi.KillRequest{Id: s.ID(), Signal: signal, All: all})
	return shimErr(err)
}

func (s *shimTask) ResizePty(ctx context.Context, size runtime.ConsoleSize) error {
	_, err := s.task.ResizePty(ctx, &taskapi.ResizePtyRequest{Id: s.ID(), Width: size.Width, Height: size.Height})
	return shimErr(err)
}

func (s *shimTask) CloseIO(ctx context.Context) error {
	_, err := s.task.CloseIO(ctx, &taskapi.CloseIORequest{Id: s.ID(), Stdin: true})
	return shimErr(err)
}

// Wait asks for the pid first, as the shim's Wait answers without it.
func (s *shimTask) Wait(ctx context.Context) (*runtime.Exit, error) {
	pid, err := s.PID(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := s.task.Wait(ctx, &taskapi.WaitRequest{Id: s.ID()})
	if err != nil {
		return nil, shimErr(err)
	}
	s.exited.Store(true)
	return &runtime.Exit{Pid: pid, Status: resp.GetExitStatus(), Timestamp: convert.TimestampFromProto(resp.GetExitedAt())}, nil
}

func (s *shimTask) Pause(ctx context.Context) error {
	_, err := s.task.Pause(ctx, &taskapi.PauseRequest{Id: s.ID()})
	return shimErr(err)
}

func (s *shimTask) Resume(ctx context.Context) error {
	_, err := s.task.Resume(ctx, &taskapi.ResumeRequest{Id: s.ID()})
	return shimErr(err)
}

func (s *shimTask) Exec(ctx context.Context, id string, opts runtime.ExecOpts) (runtime.ExecProcess, error) {
	if err := identifiers.Validate(id); err != nil {
		return nil, fmt.Errorf("invalid exec id: %w", err)
	}
	_, err := s.task.Exec(ctx, &taskapi.ExecProcessRequest{
		Id:       s.ID(),
		ExecId:   id,
		Terminal: opts.IO.Terminal,
		Stdin:    opts.IO.Stdin,
		Stdout:   opts.IO.Stdout,
		Stderr:   opts.IO.Stderr,
		Spec:     opts.Spec,
	})
	if err != nil {
		return nil, shimErr(err)
	}
	return &process{id: id, task: s}, nil
}

func (s *shimTask) Pids(ctx context.Context) ([]runtime.ProcessInfo, error) {
	resp, err := s.task.Pids(ctx, &taskapi.PidsRequest{Id: s.ID()})
	if err != nil {
		return nil, shimErr(err)
	}
	infos := make([]runtime.ProcessInfo, 0, len(resp.GetProcesses()))
	for _, p := range resp.GetProcesses() {
		infos = append(infos, runtime.ProcessInfo{Pid: p.GetPid(), Info: p.GetInfo()})
	}
	return infos, nil
}

func (s *shimTask) Checkpoint(ctx context.Context, path string, opts *anypb.Any) error {
	_, err := s.task.Checkpoint(ctx, &taskapi.CheckpointTaskRequest{Id: s.ID(), Path: path, Options: opts})
	return shimErr(err)
}

func (s *shimTask) Update(ctx context.Context, resources *anypb.Any, annotations map[string]string) error {
	_, err := s.task.Update(ctx, &taskapi.UpdateTaskRequest{Id: s.ID(), Resources: resources, Annotations: annotations})
	return shimErr(err)
}

func (s *shimTask) Process(ctx context.Context, id string) (runtime.ExecProcess, error) {
	p := &process{id: id, task: s}
	if _, err := p.State(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func (s *shimTask) Stats(ctx context.Context) (*anypb.Any, error) {
	resp, err := s.task.Stats(ctx, &taskapi.StatsRequest{Id: s.ID()})
	if err != nil {
		return nil, shimErr(err)
	}
	return resp.GetStats(), nil
}

// state asks the shim for the state of the init process (execID empty) or
// of an exec'd process.
func state(ctx context.Context, s *shimTask, execID string) (runtime.State, error) {
	resp, err := s.task.State(ctx, &taskapi.StateRequest{Id: s.ID(), ExecId: execID})
	if err != nil {
		return runtime.State{}, shimErr(err)
	}
	st := runtime.State{
		Pid:        resp.GetPid(),
		ExitStatus: resp.GetExitStatus(),
		ExitedAt:   convert.TimestampFromProto(resp.GetExitedAt()),
		Stdin:      resp.GetStdin(),
		Stdout:     resp.GetStdout(),
		Stderr:     resp.GetStderr(),
		Terminal:   resp.GetTerminal(),
	}
	switch resp.GetStatus() {
	case tasktypes.Status_CREATED:
		st.Status = runtime.CreatedStatus
	case tasktypes.Status_RUNNING:
		st.Status = runtime.RunningStatus
	case tasktypes.Status_STOPPED:
		st.Status = runtime.StoppedStatus
	case tasktypes.Status_PAUSED:
		st.Status = runtime.PausedStatus
	case tasktypes.Status_PAUSING:
		st.Status = runtime.PausingStatus
	}
	return st, nil
}

// createRequest builds the shim's Create call for opts; the task's own
// options take the place of the container's runtime options.
func createRequest(b *bundle, opts runtime.CreateOpts) *taskapi.CreateTaskRequest {
	req := &taskapi.CreateTaskRequest{
		Id:         b.id,
		Bundle:     b.path,
		Terminal:   opts.IO.Terminal,
		Stdin:      opts.IO.Stdin,
		Stdout:     opts.IO.Stdout,
		Stderr:     opts.IO.Stderr,
		Checkpoint: opts.Checkpoint,
		Options:    shimOptions(opts),
	}
	if len(opts.Rootfs) > 0 {
		req.Rootfs = convert.MountsToProto(opts.Rootfs)
	}
	return req
}

func shimOptions(opts runtime.CreateOpts) *anypb.Any {
	if opts.TaskOptions != nil {
		return opts.TaskOptions
	}
	return opts.RuntimeOptions
}
