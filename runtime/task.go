package runtime

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/anypb"
)

// Process is a process in a task: its init process or an exec'd one.
type Process interface {
	// ID is the task's id for the init process and the exec id otherwise.
	ID() string
	State(ctx context.Context) (State, error)
	// Kill sends signal to the process, or to every process in the task
	// when all is set (init process only).
	Kill(ctx context.Context, signal uint32, all bool) error
	ResizePty(ctx context.Context, size ConsoleSize) error
	// CloseIO closes the process's stdin.
	CloseIO(ctx context.Context) error
	// Start starts the process and returns its pid.
	Start(ctx context.Context) (uint32, error)
	// Wait blocks until the process exits.
	Wait(ctx context.Context) (*Exit, error)
}

// ExecProcess is a process added to a task with Exec. Unlike the init
// process, which goes with its task through PlatformRuntime.Delete, it is
// deleted on its own.
type ExecProcess interface {
	Process
	Delete(ctx context.Context) (*Exit, error)
}

// Task is a container's init process and what can be done to the
// container as a whole.
type Task interface {
	Process

	// PID is the init process's pid.
	PID(ctx context.Context) (uint32, error)
	Namespace() string
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
	// Exec adds a process, created but not started, with the given id.
	Exec(ctx context.Context, id string, opts ExecOpts) (ExecProcess, error)
	// Pids lists every process in the task.
	Pids(ctx context.Context) ([]ProcessInfo, error)
	Checkpoint(ctx context.Context, path string, opts *anypb.Any) error
	// Update changes the task's resources (a runtime-specific message, for
	// runc an OCI LinuxResources) and annotations.
	Update(ctx context.Context, resources *anypb.Any, annotations map[string]string) error
	// Process returns the exec'd process id, or a NotFound error.
	Process(ctx context.Context, id string) (ExecProcess, error)
	// Stats returns runtime-specific metrics, for runc cgroup metrics.
	Stats(ctx context.Context) (*anypb.Any, error)
}

// ExecOpts describes a process to add to a task.
type ExecOpts struct {
	// Spec is the OCI process spec as JSON.
	Spec *anypb.Any
	IO   IO
}

// ConsoleSize is a terminal's size in characters.
type ConsoleSize struct {
	Width  uint32
	Height uint32
}

// Status is where a process is in its life. The zero value is unknown.
type Status int

// The statuses, numbered as in containerd.
const (
	CreatedStatus Status = iota + 1
	RunningStatus
	StoppedStatus
	DeletedStatus
	PausedStatus
	PausingStatus
)

func (s Status) String() string {
	switch s {
	case CreatedStatus:
		return "created"
	case RunningStatus:
		return "running"
	case StoppedStatus:
		return "stopped"
	case DeletedStatus:
		return "deleted"
	case PausedStatus:
		return "paused"
	case PausingStatus:
		return "pausing"
	}
	return "unknown"
}

// State is a snapshot of a process.
type State struct {
	Status Status
	Pid    uint32
	// ExitStatus and ExitedAt are set once Status is StoppedStatus.
	ExitStatus uint32
	ExitedAt   time.Time
	Stdin      string
	Stdout     string
	Stderr     string
	Terminal   bool
}

// ProcessInfo is one process of a task with the runtime's detail on it
// (runc sends its ProcessDetails, naming the exec that owns the pid).
type ProcessInfo struct {
	Pid  uint32
	Info *anypb.Any
}

// ProcessState is a process of a task as the tasks service reports it.
type ProcessState struct {
	ContainerID string
	// ID is the container's id for its init process, the exec id for
	// others.
	ID string
	State
}

// Metric is what the runtime reported of a task's resource use, and when.
type Metric struct {
	Timestamp time.Time
	ID        string
	// Data is runtime-specific; for runc, cgroup metrics.
	Data *anypb.Any
}
