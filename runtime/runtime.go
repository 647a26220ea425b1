// Package runtime defines what the daemon asks of a container runtime: a
// PlatformRuntime creates tasks (a container's init process and the
// processes exec'd into it) and finds them again, possibly after a restart
// of the daemon, while the runtime keeps them running on its own.
package runtime

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/mount"
)

// PlatformRuntime creates and tracks the tasks of one kind of runtime.
// Tasks are namespaced: every call works in the namespace of its context.
type PlatformRuntime interface {
	// ID is the runtime's plugin URI, e.g. "io.containerd.runtime.v2.task".
	ID() string
	// Create starts a task for taskID. The task is created, not started.
	Create(ctx context.Context, taskID string, opts CreateOpts) (Task, error)
	// Get returns the task taskID, or a NotFound error.
	Get(ctx context.Context, taskID string) (Task, error)
	// Tasks lists the tasks of the context's namespace, or of every
	// namespace when all is set.
	Tasks(ctx context.Context, all bool) ([]Task, error)
	// Delete removes a stopped task and everything the runtime kept for
	// it, and returns how its init process exited.
	Delete(ctx context.Context, taskID string) (*Exit, error)
}

// IO names where a process's standard streams go: paths (usually fifos)
// or URIs the runtime understands. Empty means discarded.
type IO struct {
	Stdin    string
	Stdout   string
	Stderr   string
	Terminal bool
}

// CreateOpts is everything a runtime needs to create a task; the caller
// resolves it from the container record.
type CreateOpts struct {
	// Spec is the OCI runtime spec; its Value is the spec's JSON.
	Spec *anypb.Any
	// Rootfs are the mounts that make up the container's root filesystem,
	// applied in order by the runtime.
	Rootfs []mount.Mount
	// IO is where the init process's streams go.
	IO IO
	// Checkpoint, if set, is the path of a checkpoint to restore from.
	Checkpoint string
	// RuntimeOptions are the container's runtime options, such as runc's
	// Options; TaskOptions, given to this task alone, take their place.
	RuntimeOptions *anypb.Any
	TaskOptions    *anypb.Any
	// Runtime is the runtime's name, e.g. "io.containerd.runc.v2", or the
	// absolute path of a shim binary.
	Runtime string
	// Group, if set, names a task of the same namespace whose shim serves
	// this one too (a pod's sandbox task): the runtime connects to that
	// shim rather than run the shim binary's start, which would only find
	// the same shim. Only for shims that group tasks so: the runc shims
	// group a pod's containers by the io.kubernetes.cri.sandbox-id
	// annotation.
	Group string
}

// Exit is how a process ended.
type Exit struct {
	Pid       uint32
	Status    uint32
	Timestamp time.Time
}
