// Package shim is the frame of a runtime-v2 shim binary: the command line
// the daemons use (start, delete, serve), both bootstrap protocols, the
// socket, logging to the bundle's log fifo, publishing events back to the
// daemon and serving the task API over ttrpc. What is runtime-specific (how
// tasks are grouped, how a dead task is cleaned up, the task service
// itself) comes from a Manager.
package shim

import (
	"context"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	taskapi "github.com/llitfkitfk/containerd/api/runtime/task/v2"
)

// Publisher sends a task event to the daemon under a topic such as
// /tasks/exit. Events go out in the order published; Publish does not wait
// for the daemon.
type Publisher interface {
	Publish(ctx context.Context, topic string, event proto.Message) error
}

// StartOpts is what a start or delete command is given, whichever
// protocol the daemon used.
type StartOpts struct {
	// ID is the task's id (-id), Namespace its namespace (-namespace).
	ID, Namespace string
	// Bundle is the task's bundle directory: the working directory on
	// start, -bundle (or the working directory) on delete.
	Bundle string
	// Address is the daemon's gRPC address, TTRPCAddress its ttrpc
	// address, PublishBinary the daemon's binary (-publish-binary).
	Address, TTRPCAddress, PublishBinary string
	Debug                                bool
	// Options are the task's runtime options, such as a
	// containerd.runc.v1.Options, or nil.
	Options *anypb.Any
}

// Manager is the runtime-specific half of the shim's commands.
type Manager interface {
	// Name is the runtime's name, io.containerd.runc.v2.
	Name() string
	// Group returns the id that names the shim a new task is to run
	// under: tasks with the same group share one shim process. A task
	// that belongs to no group returns its own id.
	Group(opts StartOpts) (string, error)
	// ShimCgroup is the cgroup the serving shim is to be placed in, ""
	// for none.
	ShimCgroup(opts StartOpts) string
	// Stop is the delete command: clean up after the task of a shim that
	// is gone (force-delete the container, unmount its rootfs) and report
	// how its init process ended.
	Stop(ctx context.Context, opts StartOpts) (*taskapi.DeleteResponse, error)
	// NewService makes the task service of a serving shim. shutdown ends
	// the shim once its service has no task left and was asked to exit.
	NewService(ctx context.Context, opts ServiceOpts) (taskapi.TaskService, error)
}

// ServiceOpts is what a serving shim gives its task service.
type ServiceOpts struct {
	// ID is the id the shim was started for (its group's).
	ID, Namespace string
	Publisher     Publisher
	// Shutdown asks the shim to stop serving and exit; call it once no
	// task is left and the daemon called Shutdown.
	Shutdown func()
}
