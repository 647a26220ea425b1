// Package tasks holds the tasks service: the local service, which makes
// tasks from container records and drives them through the shim v2
// runtime, and its gRPC adapter.
//
// It publishes no events. The shims publish the task events of containerd
// 1.6 (/tasks/create, start, exit, delete, exec-added, exec-started,
// paused, resumed, oom) themselves, and clients would see a second copy of
// any published here.
package tasks

import (
	"context"
	"fmt"
	"strconv"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/filters"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/runtime"
	"github.com/llitfkitfk/containerd/services"
	"github.com/llitfkitfk/containerd/snapshots"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type: plugin.ServicePlugin,
		ID:   services.TasksService,
		// After the containers and snapshots services, which it reads.
		Requires: []plugin.Type{plugin.RuntimePluginV2, plugin.ServicePlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			p, err := ic.Get(plugin.RuntimePluginV2)
			if err != nil {
				return nil, err
			}
			rt, ok := p.(runtime.PlatformRuntime)
			if !ok {
				return nil, fmt.Errorf("%s plugin is a %T, not a runtime.PlatformRuntime", plugin.RuntimePluginV2, p)
			}
			cs, err := ic.GetByID(plugin.ServicePlugin, services.ContainersService)
			if err != nil {
				return nil, err
			}
			ss, err := ic.GetByID(plugin.ServicePlugin, services.SnapshotsService)
			if err != nil {
				return nil, err
			}
			return NewLocal(rt, cs.(containers.Store), ss.(map[string]snapshots.Snapshotter)), nil
		},
	})
}

// stateTimeout bounds asking a shim for a process's state, so that one
// hung shim does not hang every list.
const stateTimeout = 2 * time.Second

// Local is the tasks service: tasks made from container records, in the
// namespace of each call's context.
type Local struct {
	runtime      runtime.PlatformRuntime
	containers   containers.Store
	snapshotters map[string]snapshots.Snapshotter
}

// NewLocal returns the tasks service over rt, finding containers in cs and
// their root filesystems in the snapshotters.
func NewLocal(rt runtime.PlatformRuntime, cs containers.Store, snapshotters map[string]snapshots.Snapshotter) *Local {
	return &Local{runtime: rt, containers: cs, snapshotters: snapshotters}
}

// CreateOpts is what a task is made with besides its container record.
type CreateOpts struct {
	// Rootfs are the mounts of the root filesystem, as containerd clients
	// resolve them; without any, the mounts of the container's snapshot.
	Rootfs []mount.Mount
	// IO is where the init process's streams go.
	IO runtime.IO
	// Options, runtime options for this task alone, take the place of the
	// container's.
	Options *anypb.Any
	// RuntimePath, if set, is the shim binary to run instead of the one
	// the container's runtime names.
	RuntimePath string
	// Group names the task whose shim serves this one (runtime.CreateOpts).
	Group string
	// Checkpoint and TaskAPIAddress are not supported: restoring from a
	// checkpoint, and tasks on a sandbox's task API.
	Checkpoint     *ocispec.Descriptor
	TaskAPIAddress string
}

// Create makes the container's task, created but not started.
func (l *Local) Create(ctx context.Context, containerID string, opts CreateOpts) (runtime.Task, error) {
	if opts.Checkpoint != nil {
		return nil, fmt.Errorf("restoring from a checkpoint: %w", errdefs.ErrNotImplemented)
	}
	if opts.TaskAPIAddress != "" {
		return nil, fmt.Errorf("tasks on a sandbox's task API: %w", errdefs.ErrNotImplemented)
	}
	c, err := l.containers.Get(ctx, containerID)
	if err != nil {
		return nil, err
	}
	rootfs := opts.Rootfs
	if len(rootfs) == 0 && c.SnapshotKey != "" {
		if rootfs, err = l.snapshotMounts(ctx, c); err != nil {
			return nil, err
		}
	}
	ropts := runtime.CreateOpts{
		Spec:           c.Spec,
		Rootfs:         rootfs,
		IO:             opts.IO,
		RuntimeOptions: c.Runtime.Options,
		TaskOptions:    opts.Options,
		Runtime:        c.Runtime.Name,
		Group:          opts.Group,
	}
	if opts.RuntimePath != "" {
		ropts.Runtime = opts.RuntimePath
	}
	return l.runtime.Create(ctx, c.ID, ropts)
}

func (l *Local) snapshotMounts(ctx context.Context, c containers.Container) ([]mount.Mount, error) {
	sn, ok := l.snapshotters[c.Snapshotter]
	if !ok {
		return nil, fmt.Errorf("container %s: snapshotter %q not available: %w", c.ID, c.Snapshotter, errdefs.ErrFailedPrecondition)
	}
	mounts, err := sn.Mounts(ctx, c.SnapshotKey)
	if err != nil {
		return nil, fmt.Errorf("container %s: mounts of snapshot %q: %w", c.ID, c.SnapshotKey, err)
	}
	return mounts, nil
}

// Get returns the container's task, or NotFound.
func (l *Local) Get(ctx context.Context, containerID string) (runtime.Task, error) {
	return l.runtime.Get(ctx, containerID)
}

// Process returns the task's init process, or its exec'd process execID.
func (l *Local) Process(ctx context.Context, containerID, execID string) (runtime.Process, error) {
	t, err := l.runtime.Get(ctx, containerID)
	if err != nil {
		return nil, err
	}
	if execID == "" {
		return t, nil
	}
	return t.Process(ctx, execID)
}

// Delete deletes a stopped task and returns how its init process exited.
// The shim refuses a task whose process still runs.
func (l *Local) Delete(ctx context.Context, containerID string) (*runtime.Exit, error) {
	return l.runtime.Delete(ctx, containerID)
}

// DeleteProcess deletes an exec'd process that has exited and returns
// how it did.
func (l *Local) DeleteProcess(ctx context.Context, containerID, execID string) (*runtime.Exit, error) {
	if execID == "" {
		return nil, fmt.Errorf("exec id is required; delete the task itself with Delete: %w", errdefs.ErrInvalidArgument)
	}
	t, err := l.runtime.Get(ctx, containerID)
	if err != nil {
		return nil, err
	}
	p, err := t.Process(ctx, execID)
	if err != nil {
		return nil, err
	}
	return p.Delete(ctx)
}

// Exec adds a process, described by an OCI runtime-spec Process, to the
// task; it is started with Start.
func (l *Local) Exec(ctx context.Context, containerID, execID string, opts runtime.ExecOpts) (runtime.ExecProcess, error) {
	if execID == "" {
		return nil, fmt.Errorf("exec id is required: %w", errdefs.ErrInvalidArgument)
	}
	if opts.Spec == nil {
		return nil, fmt.Errorf("exec %s: process spec is required: %w", execID, errdefs.ErrInvalidArgument)
	}
	t, err := l.runtime.Get(ctx, containerID)
	if err != nil {
		return nil, err
	}
	return t.Exec(ctx, execID, opts)
}

// State reports a process of the container's task: its init process, or
// the exec'd process execID.
func (l *Local) State(ctx context.Context, containerID, execID string) (runtime.ProcessState, error) {
	p, err := l.Process(ctx, containerID, execID)
	if err != nil {
		return runtime.ProcessState{}, err
	}
	return processState(ctx, containerID, p)
}

// List returns the namespace's tasks, those matching the filter if there
// is one (fields: id, container_id, pid, status, as "running").
func (l *Local) List(ctx context.Context, filter string) ([]runtime.ProcessState, error) {
	f, err := filters.ParseAll(filter)
	if err != nil {
		return nil, err
	}
	tasks, err := l.runtime.Tasks(ctx, false)
	if err != nil {
		return nil, err
	}
	var out []runtime.ProcessState
	for _, t := range tasks {
		st, err := processState(ctx, t.ID(), t)
		if err != nil {
			// A task deleted since it was listed is simply gone.
			if !errdefs.IsNotFound(err) {
				log.G(ctx).WithError(err).WithField("id", t.ID()).Warn("list task")
			}
			continue
		}
		if f.Match(adaptProcess(st)) {
			out = append(out, st)
		}
	}
	return out, nil
}

// Metrics returns the runtime's stats of each task matching the filters
// (fields: id, namespace). A task whose stats cannot be had is left out,
// as in containerd.
func (l *Local) Metrics(ctx context.Context, fs ...string) ([]runtime.Metric, error) {
	f, err := filters.ParseAll(fs...)
	if err != nil {
		return nil, err
	}
	tasks, err := l.runtime.Tasks(ctx, false)
	if err != nil {
		return nil, err
	}
	var out []runtime.Metric
	for _, t := range tasks {
		if !f.Match(adaptTask(t)) {
			continue
		}
		collected := time.Now()
		stats, err := t.Stats(ctx)
		if err != nil {
			if !errdefs.IsNotFound(err) {
				log.G(ctx).WithError(err).WithField("id", t.ID()).Warn("collect task metrics")
			}
			continue
		}
		out = append(out, runtime.Metric{Timestamp: collected, ID: t.ID(), Data: stats})
	}
	return out, nil
}

func processState(ctx context.Context, containerID string, p runtime.Process) (runtime.ProcessState, error) {
	ctx, cancel := context.WithTimeout(ctx, stateTimeout)
	defer cancel()
	st, err := p.State(ctx)
	if err != nil {
		return runtime.ProcessState{}, err
	}
	return runtime.ProcessState{ContainerID: containerID, ID: p.ID(), State: st}, nil
}

// filterable are the statuses as containerd clients name them in filters.
var filterable = map[runtime.Status]bool{
	runtime.CreatedStatus: true,
	runtime.RunningStatus: true,
	runtime.StoppedStatus: true,
	runtime.PausedStatus:  true,
	runtime.PausingStatus: true,
}

func adaptProcess(p runtime.ProcessState) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) != 1 {
			return "", false
		}
		switch fieldpath[0] {
		case "id":
			return p.ID, p.ID != ""
		case "container_id":
			return p.ContainerID, p.ContainerID != ""
		case "pid":
			return strconv.FormatUint(uint64(p.Pid), 10), p.Pid != 0
		case "status":
			return p.Status.String(), filterable[p.Status]
		}
		return "", false
	})
}

func adaptTask(t runtime.Task) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) != 1 {
			return "", false
		}
		switch fieldpath[0] {
		case "id":
			return t.ID(), true
		case "namespace":
			return t.Namespace(), true
		}
		return "", false
	})
}
