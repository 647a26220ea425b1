package client

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"

	"github.com/llitfkitfk/containerd/api/convert"
	tasksapi "github.com/llitfkitfk/containerd/api/services/tasks/v1"
	"github.com/llitfkitfk/containerd/api/types/runc/options"
	tasktypes "github.com/llitfkitfk/containerd/api/types/task"
	"github.com/llitfkitfk/containerd/cio"
	"github.com/llitfkitfk/containerd/errdefs"
)

// task is a container's task, over the raw tasks API. Its init process
// is addressed by the container id and no exec id.
type task struct {
	client *Client
	id     string
	pid    uint32
	io     cio.IO
	// exited is set once a Wait of the init process has seen it exit:
	// Delete then knows it is stopped without asking.
	exited atomic.Bool
}

// process is an exec'd process of a task.
type process struct {
	task *task
	id   string
	pid  uint32
	io   cio.IO
}

func (t *task) ID() string     { return t.id }
func (t *task) Pid() uint32    { return t.pid }
func (t *task) IO() cio.IO     { return t.io }
func (p *process) ID() string  { return p.id }
func (p *process) Pid() uint32 { return p.pid }
func (p *process) IO() cio.IO  { return p.io }

// The calls shared by a task's init process (execID "") and its execs.

func startProcess(ctx context.Context, t *task, execID string, i cio.IO) (uint32, error) {
	r, err := t.client.TaskService().Start(ctx, &tasksapi.StartRequest{ContainerId: t.id, ExecId: execID})
	if err != nil {
		if i != nil {
			i.Cancel()
			i.Close()
		}
		return 0, errdefs.FromGRPC(err)
	}
	return r.GetPid(), nil
}

func killProcess(ctx context.Context, t *task, execID string, sig syscall.Signal, opts []KillOpts) error {
	info := KillInfo{ExecID: execID}
	for _, o := range opts {
		if err := o(ctx, &info); err != nil {
			return err
		}
	}
	_, err := t.client.TaskService().Kill(ctx, &tasksapi.KillRequest{
		ContainerId: t.id,
		ExecId:      info.ExecID,
		Signal:      uint32(sig),
		All:         info.All,
	})
	return errdefs.FromGRPC(err)
}

// waitProcess asks the daemon, in the background, for the exit of the
// process. The daemon keeps a process's exit status until the process is
// deleted, so a wait that reaches it after a fast exit still gets it:
// only a Delete racing ahead of the wait could lose it, and deletes come
// after the wait's result in every flow here.
func waitProcess(ctx context.Context, t *task, execID string) <-chan ExitStatus {
	c := make(chan ExitStatus, 1)
	go func() {
		defer close(c)
		r, err := t.client.TaskService().Wait(ctx, &tasksapi.WaitRequest{ContainerId: t.id, ExecId: execID})
		if err != nil {
			c <- ExitStatus{code: UnknownExitStatus, err: errdefs.FromGRPC(err)}
			return
		}
		if execID == "" {
			t.exited.Store(true)
		}
		c <- ExitStatus{code: r.GetExitStatus(), exitedAt: convert.TimestampFromProto(r.GetExitedAt())}
	}()
	return c
}

func closeIO(ctx context.Context, t *task, execID string, opts []IOCloserOpts) error {
	var info IOCloseInfo
	for _, o := range opts {
		o(&info)
	}
	_, err := t.client.TaskService().CloseIO(ctx, &tasksapi.CloseIORequest{ContainerId: t.id, ExecId: execID, Stdin: info.Stdin})
	return errdefs.FromGRPC(err)
}

func resizeProcess(ctx context.Context, t *task, execID string, w, h uint32) error {
	_, err := t.client.TaskService().ResizePty(ctx, &tasksapi.ResizePtyRequest{ContainerId: t.id, ExecId: execID, Width: w, Height: h})
	return errdefs.FromGRPC(err)
}

func processStatus(ctx context.Context, t *task, execID string) (Status, error) {
	r, err := t.client.TaskService().Get(ctx, &tasksapi.GetRequest{ContainerId: t.id, ExecId: execID})
	if err != nil {
		return Status{}, errdefs.FromGRPC(err)
	}
	p := r.GetProcess()
	return Status{
		Status:     statusOf(p.GetStatus()),
		ExitStatus: p.GetExitStatus(),
		ExitTime:   convert.TimestampFromProto(p.GetExitedAt()),
	}, nil
}

// statusOf names a wire status as the daemon's clients do ("running").
func statusOf(s tasktypes.Status) ProcessStatus {
	switch s {
	case tasktypes.Status_CREATED:
		return Created
	case tasktypes.Status_RUNNING:
		return Running
	case tasktypes.Status_STOPPED:
		return Stopped
	case tasktypes.Status_PAUSED:
		return Paused
	case tasktypes.Status_PAUSING:
		return Pausing
	}
	return Unknown
}

// finishIO waits for the copies to drain what the process wrote and
// releases the fifos. It is called once the daemon has deleted the
// process: the shim has closed its ends by then, so each copy reads the
// rest and ends. Cancel is not used here: it abandons the copies, and
// with them output still in the fifos.
func finishIO(i cio.IO) {
	if i == nil {
		return
	}
	i.Wait()
	i.Close()
}

// Task.

func (t *task) Start(ctx context.Context) error {
	pid, err := startProcess(ctx, t, "", t.io)
	if err != nil {
		return err
	}
	t.pid = pid
	return nil
}

func (t *task) Kill(ctx context.Context, sig syscall.Signal, opts ...KillOpts) error {
	return killProcess(ctx, t, "", sig, opts)
}

func (t *task) Wait(ctx context.Context) (<-chan ExitStatus, error) {
	return waitProcess(ctx, t, ""), nil
}

func (t *task) CloseIO(ctx context.Context, opts ...IOCloserOpts) error {
	return closeIO(ctx, t, "", opts)
}

func (t *task) Resize(ctx context.Context, w, h uint32) error {
	return resizeProcess(ctx, t, "", w, h)
}

func (t *task) Status(ctx context.Context) (Status, error) {
	return processStatus(ctx, t, "")
}

// Delete removes a stopped (or never started) task and returns how its
// init process ended; a running or paused one is refused.
func (t *task) Delete(ctx context.Context, opts ...ProcessDeleteOpts) (*ExitStatus, error) {
	for _, o := range opts {
		if err := o(ctx, t); err != nil {
			return nil, err
		}
	}
	if !t.exited.Load() {
		st, err := t.Status(ctx)
		if err != nil {
			return nil, err
		}
		switch st.Status {
		case Stopped, Created, Unknown:
		default:
			return nil, fmt.Errorf("task %s must be stopped before deletion, it is %s: %w", t.id, st.Status, errdefs.ErrFailedPrecondition)
		}
	}
	r, err := t.client.TaskService().Delete(ctx, &tasksapi.DeleteTaskRequest{ContainerId: t.id})
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	finishIO(t.io)
	return &ExitStatus{code: r.GetExitStatus(), exitedAt: convert.TimestampFromProto(r.GetExitedAt())}, nil
}

func (t *task) Pause(ctx context.Context) error {
	_, err := t.client.TaskService().Pause(ctx, &tasksapi.PauseTaskRequest{ContainerId: t.id})
	return errdefs.FromGRPC(err)
}

func (t *task) Resume(ctx context.Context) error {
	_, err := t.client.TaskService().Resume(ctx, &tasksapi.ResumeTaskRequest{ContainerId: t.id})
	return errdefs.FromGRPC(err)
}

func (t *task) Exec(ctx context.Context, id string, spec *specs.Process, ioCreate cio.Creator) (_ Process, retErr error) {
	if id == "" {
		return nil, fmt.Errorf("exec id must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	if spec == nil {
		return nil, fmt.Errorf("exec %s has no process spec: %w", id, errdefs.ErrInvalidArgument)
	}
	a, err := anyOf(spec)
	if err != nil {
		return nil, err
	}
	i, err := ioCreate(id)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			i.Cancel()
			i.Close()
		}
	}()
	cfg := i.Config()
	_, err = t.client.TaskService().Exec(ctx, &tasksapi.ExecProcessRequest{
		ContainerId: t.id,
		ExecId:      id,
		Terminal:    cfg.Terminal,
		Stdin:       cfg.Stdin,
		Stdout:      cfg.Stdout,
		Stderr:      cfg.Stderr,
		Spec:        a,
	})
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	return &process{task: t, id: id, io: i}, nil
}

// Pids lists the task's processes; those of an exec carry its id (from
// runc's process details).
func (t *task) Pids(ctx context.Context) ([]ProcessInfo, error) {
	r, err := t.client.TaskService().ListPids(ctx, &tasksapi.ListPidsRequest{ContainerId: t.id})
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	out := make([]ProcessInfo, 0, len(r.GetProcesses()))
	for _, p := range r.GetProcesses() {
		pi := ProcessInfo{Pid: p.GetPid()}
		if a := p.GetInfo(); a != nil && strings.HasSuffix(a.GetTypeUrl(), string(proto.MessageName(&options.ProcessDetails{}))) {
			var d options.ProcessDetails
			if err := proto.Unmarshal(a.GetValue(), &d); err == nil {
				pi.ExecID = d.GetExecId()
			}
		}
		out = append(out, pi)
	}
	return out, nil
}

func (t *task) LoadProcess(ctx context.Context, id string, ioAttach cio.Attach) (Process, error) {
	r, err := t.client.TaskService().Get(ctx, &tasksapi.GetRequest{ContainerId: t.id, ExecId: id})
	if err != nil {
		err = errdefs.FromGRPC(err)
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("no running process %s found: %w", id, err)
		}
		return nil, err
	}
	p := &process{task: t, id: id, pid: r.GetProcess().GetPid()}
	if ioAttach != nil && r.GetProcess().GetStatus() != tasktypes.Status_UNKNOWN {
		if p.io, err = attachIO(r.GetProcess(), ioAttach); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (t *task) Metrics(ctx context.Context) (*Metrics, error) {
	r, err := t.client.TaskService().Metrics(ctx, &tasksapi.MetricsRequest{Filters: []string{"id==" + t.id}})
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	for _, m := range r.GetMetrics() {
		if m.GetId() != t.id {
			continue
		}
		return &Metrics{
			ID:        m.GetId(),
			Timestamp: convert.TimestampFromProto(m.GetTimestamp()),
			TypeURL:   m.GetData().GetTypeUrl(),
			Data:      m.GetData().GetValue(),
		}, nil
	}
	return nil, fmt.Errorf("no metrics for task %s: %w", t.id, errdefs.ErrNotFound)
}

func (t *task) Spec(ctx context.Context) (*specs.Spec, error) {
	rec, err := t.client.ContainerService().Get(ctx, t.id)
	if err != nil {
		return nil, err
	}
	return specOfContainer(rec)
}

func (t *task) Update(ctx context.Context, opts ...UpdateTaskOpts) error {
	var info UpdateTaskInfo
	for _, o := range opts {
		if err := o(ctx, t.client, &info); err != nil {
			return err
		}
	}
	req := &tasksapi.UpdateTaskRequest{ContainerId: t.id, Annotations: info.Annotations}
	if info.Resources != nil {
		a, err := anyOf(info.Resources)
		if err != nil {
			return fmt.Errorf("task resources: %w", err)
		}
		req.Resources = a
	}
	_, err := t.client.TaskService().Update(ctx, req)
	return errdefs.FromGRPC(err)
}

// Exec'd process.

func (p *process) Start(ctx context.Context) error {
	pid, err := startProcess(ctx, p.task, p.id, p.io)
	if err != nil {
		return err
	}
	p.pid = pid
	return nil
}

func (p *process) Kill(ctx context.Context, sig syscall.Signal, opts ...KillOpts) error {
	return killProcess(ctx, p.task, p.id, sig, opts)
}

func (p *process) Wait(ctx context.Context) (<-chan ExitStatus, error) {
	return waitProcess(ctx, p.task, p.id), nil
}

func (p *process) CloseIO(ctx context.Context, opts ...IOCloserOpts) error {
	return closeIO(ctx, p.task, p.id, opts)
}

func (p *process) Resize(ctx context.Context, w, h uint32) error {
	return resizeProcess(ctx, p.task, p.id, w, h)
}

func (p *process) Status(ctx context.Context) (Status, error) {
	return processStatus(ctx, p.task, p.id)
}

// Delete removes an exited exec and returns how it ended.
func (p *process) Delete(ctx context.Context, opts ...ProcessDeleteOpts) (*ExitStatus, error) {
	for _, o := range opts {
		if err := o(ctx, p); err != nil {
			return nil, err
		}
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, err
	}
	switch st.Status {
	case Running, Paused, Pausing:
		return nil, fmt.Errorf("process %s must be stopped before deletion, it is %s: %w", p.id, st.Status, errdefs.ErrFailedPrecondition)
	}
	r, err := p.task.client.TaskService().DeleteProcess(ctx, &tasksapi.DeleteProcessRequest{ContainerId: p.task.id, ExecId: p.id})
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	finishIO(p.io)
	return &ExitStatus{code: r.GetExitStatus(), exitedAt: convert.TimestampFromProto(r.GetExitedAt())}, nil
}
