package client

import (
	"context"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/cio"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/mount"
)

// ProcessStatus is the state of a process, as the daemon names it.
type ProcessStatus string

// The states of a process.
const (
	Running ProcessStatus = "running"
	Created ProcessStatus = "created"
	Stopped ProcessStatus = "stopped"
	Paused  ProcessStatus = "paused"
	Pausing ProcessStatus = "pausing"
	Unknown ProcessStatus = "unknown"
)

// Status is a process's state and, once stopped, its exit status.
type Status struct {
	Status     ProcessStatus
	ExitStatus uint32
	ExitTime   time.Time
}

// UnknownExitStatus is the exit code of a process whose end could not be
// learnt (the wait failed).
const UnknownExitStatus = 255

// ExitStatus is how a process ended.
type ExitStatus struct {
	code     uint32
	exitedAt time.Time
	err      error
}

// NewExitStatus makes an ExitStatus.
func NewExitStatus(code uint32, t time.Time, err error) *ExitStatus {
	return &ExitStatus{code: code, exitedAt: t, err: err}
}

// Result is the exit code, exit time and any error in waiting.
func (s ExitStatus) Result() (uint32, time.Time, error) { return s.code, s.exitedAt, s.err }

// ExitCode is the exit code.
func (s ExitStatus) ExitCode() uint32 { return s.code }

// ExitTime is when the process exited.
func (s ExitStatus) ExitTime() time.Time { return s.exitedAt }

// Error is the error in waiting, if any.
func (s ExitStatus) Error() error { return s.err }

// Process is a task's init process or one of its exec'd processes.
type Process interface {
	ID() string
	Pid() uint32
	Start(ctx context.Context) error
	// Delete removes the process once it has exited, returning how it
	// ended.
	Delete(ctx context.Context, opts ...ProcessDeleteOpts) (*ExitStatus, error)
	Kill(ctx context.Context, sig syscall.Signal, opts ...KillOpts) error
	// Wait returns a channel that receives the exit status once; call it
	// before Start so a fast exit is not missed.
	Wait(ctx context.Context) (<-chan ExitStatus, error)
	CloseIO(ctx context.Context, opts ...IOCloserOpts) error
	Resize(ctx context.Context, w, h uint32) error
	IO() cio.IO
	Status(ctx context.Context) (Status, error)
}

// ProcessInfo is one process of a task (Task.Pids).
type ProcessInfo struct {
	Pid uint32
	// ExecID is the exec that started it, if any.
	ExecID string
}

// Task is a container's running (or created) process tree.
type Task interface {
	Process
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
	// Exec adds process id from spec, not yet started.
	Exec(ctx context.Context, id string, spec *specs.Process, ioCreate cio.Creator) (Process, error)
	Pids(ctx context.Context) ([]ProcessInfo, error)
	LoadProcess(ctx context.Context, id string, ioAttach cio.Attach) (Process, error)
	// Metrics is the task's cgroup statistics, as the raw typed Any the
	// daemon returns.
	Metrics(ctx context.Context) (*Metrics, error)
	Spec(ctx context.Context) (*specs.Spec, error)
	// Update changes the running task's resources.
	Update(ctx context.Context, opts ...UpdateTaskOpts) error
}

// Metrics is one sample of a task's statistics: Data is the
// runtime's stats message (cgroups v1 or v2), by type URL.
type Metrics struct {
	ID        string
	Timestamp time.Time
	TypeURL   string
	Data      []byte
}

// NewTaskOpts sets an option of a task being created.
type NewTaskOpts func(ctx context.Context, client *Client, info *TaskInfo) error

// TaskInfo holds the options of a task being created.
type TaskInfo struct {
	// RootFS overrides the mounts of the container's snapshot.
	RootFS []mount.Mount
	// Options are the runtime's task options, for runc a
	// *options.Options of api/types/runc/options; they replace the
	// container's runtime options for this task. Nil sends none.
	Options interface{}
	// Runtime is the container's runtime name.
	Runtime string

	// runtimeOptions are the container's, the base of task options that
	// change one runc setting.
	runtimeOptions *anypb.Any
}

// ProcessDeleteOpts is an option of Process.Delete.
type ProcessDeleteOpts func(ctx context.Context, p Process) error

// WithProcessKill kills the process (and, for a task, all of it) before
// deleting it, and waits for it to exit.
func WithProcessKill(ctx context.Context, p Process) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The wait is asked for before the kill, so the exit is not missed.
	exited, err := p.Wait(ctx)
	if err != nil {
		return err
	}
	if err := p.Kill(ctx, syscall.SIGKILL, WithKillAll); err != nil {
		switch {
		case errdefs.IsFailedPrecondition(err):
			// Already stopped.
			return nil
		case errdefs.IsNotFound(err):
			// It may have exited between the wait and the kill.
			select {
			case <-exited:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return err
	}
	<-exited
	return nil
}

// KillOpts is an option of Process.Kill.
type KillOpts func(ctx context.Context, i *KillInfo) error

// KillInfo holds the options of Kill.
type KillInfo struct {
	// All signals every process of the task.
	All bool
	// ExecID signals that exec instead of the init process.
	ExecID string
}

// WithKillAll signals every process of the task.
func WithKillAll(_ context.Context, i *KillInfo) error { i.All = true; return nil }

// IOCloserOpts is an option of CloseIO.
type IOCloserOpts func(*IOCloseInfo)

// IOCloseInfo holds the options of CloseIO.
type IOCloseInfo struct {
	Stdin bool
}

// WithStdinCloser closes the process's stdin.
func WithStdinCloser(r *IOCloseInfo) { r.Stdin = true }
