package client

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/llitfkitfk/containerd/api/types/runc/options"
	"github.com/llitfkitfk/containerd/mount"
)

// WithKillExecID signals exec execID instead of the init process.
func WithKillExecID(execID string) KillOpts {
	return func(_ context.Context, i *KillInfo) error {
		i.ExecID = execID
		return nil
	}
}

// WithRootFS gives the task these mounts instead of its container's
// snapshot's.
func WithRootFS(mounts []mount.Mount) NewTaskOpts {
	return func(_ context.Context, _ *Client, info *TaskInfo) error {
		info.RootFS = slices.Clone(mounts)
		return nil
	}
}

// runcOptions is the task's runc options, made on first use from the
// container's: task options replace the container's in the daemon, so
// they must carry its settings too.
func runcOptions(info *TaskInfo) *options.Options {
	if o, ok := info.Options.(*options.Options); ok {
		return o
	}
	o := &options.Options{}
	if a := info.runtimeOptions; a != nil && strings.HasSuffix(a.GetTypeUrl(), string(proto.MessageName(o))) {
		// Undecodable options are left to the daemon to refuse.
		_ = proto.Unmarshal(a.GetValue(), o)
	}
	info.Options = o
	return o
}

// WithNoPivotRoot has runc run the task without pivot_root (for a root
// filesystem on ramfs).
func WithNoPivotRoot(_ context.Context, _ *Client, info *TaskInfo) error {
	runcOptions(info).NoPivotRoot = true
	return nil
}

// WithShimCgroup puts the task's shim in cgroup path.
func WithShimCgroup(path string) NewTaskOpts {
	return func(_ context.Context, _ *Client, info *TaskInfo) error {
		runcOptions(info).ShimCgroup = path
		return nil
	}
}

// UpdateTaskOpts sets an option of Task.Update.
type UpdateTaskOpts func(context.Context, *Client, *UpdateTaskInfo) error

// UpdateTaskInfo holds the options of Task.Update.
type UpdateTaskInfo struct {
	// Resources are the new resources, a *specs.LinuxResources for runc.
	Resources interface{}
	// Annotations are passed to the runtime.
	Annotations map[string]string
}

// WithResources sets the task's new resources.
func WithResources(resources interface{}) UpdateTaskOpts {
	return func(_ context.Context, _ *Client, r *UpdateTaskInfo) error {
		r.Resources = resources
		return nil
	}
}
