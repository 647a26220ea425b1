// Package tasks serves the Tasks API: it makes tasks from container records
// and drives them through the shim v2 runtime.
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

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	api "github.com/llitfkitfk/containerd/api/services/tasks/v1"
	"github.com/llitfkitfk/containerd/api/types"
	tasktypes "github.com/llitfkitfk/containerd/api/types/task"
	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/filters"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/runtime"
	"github.com/llitfkitfk/containerd/snapshots"
)

// stateTimeout bounds asking a shim for a process's state when listing, so
// that one hung shim does not hang every list.
const stateTimeout = 2 * time.Second

type service struct {
	api.UnimplementedTasksServer
	runtime    runtime.PlatformRuntime
	containers containers.Store
	// snapshotter returns the namespaced snapshotter of that name, or nil.
	snapshotter func(name string) snapshots.Snapshotter
}

func newService(rt runtime.PlatformRuntime, cs containers.Store, sn func(string) snapshots.Snapshotter) *service {
	return &service{runtime: rt, containers: cs, snapshotter: sn}
}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterTasksServer(server, s)
	return nil
}

// Create makes the container's task, created but not started. The root
// filesystem is the request's mounts, as containerd clients resolve them;
// without any, the mounts of the container's snapshot.
func (s *service) Create(ctx context.Context, req *api.CreateTaskRequest) (*api.CreateTaskResponse, error) {
	if req.GetCheckpoint() != nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("restoring from a checkpoint: %w", errdefs.ErrNotImplemented))
	}
	if req.GetTaskApiAddress() != "" {
		return nil, errdefs.ToGRPC(fmt.Errorf("tasks on a sandbox's task API: %w", errdefs.ErrNotImplemented))
	}
	c, err := s.containers.Get(ctx, req.GetContainerId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	rootfs, err := s.rootfs(ctx, req, c)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	opts := runtime.CreateOpts{
		Spec:   c.Spec,
		Rootfs: rootfs,
		IO: runtime.IO{
			Stdin:    req.GetStdin(),
			Stdout:   req.GetStdout(),
			Stderr:   req.GetStderr(),
			Terminal: req.GetTerminal(),
		},
		RuntimeOptions: c.Runtime.Options,
		TaskOptions:    req.GetOptions(),
		Runtime:        c.Runtime.Name,
	}
	if req.GetRuntimePath() != "" {
		opts.Runtime = req.GetRuntimePath()
	}
	t, err := s.runtime.Create(ctx, c.ID, opts)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	pid, err := t.PID(ctx)
	if err != nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("pid of task %s: %w", c.ID, err))
	}
	return &api.CreateTaskResponse{ContainerId: c.ID, Pid: pid}, nil
}

func (s *service) rootfs(ctx context.Context, req *api.CreateTaskRequest, c containers.Container) ([]mount.Mount, error) {
	var mounts []mount.Mount
	for _, m := range req.GetRootfs() {
		mounts = append(mounts, mount.Mount{Type: m.GetType(), Source: m.GetSource(), Target: m.GetTarget(), Options: m.GetOptions()})
	}
	if len(mounts) > 0 || c.SnapshotKey == "" {
		return mounts, nil
	}
	sn := s.snapshotter(c.Snapshotter)
	if sn == nil {
		return nil, fmt.Errorf("container %s: snapshotter %q not available: %w", c.ID, c.Snapshotter, errdefs.ErrFailedPrecondition)
	}
	mounts, err := sn.Mounts(ctx, c.SnapshotKey)
	if err != nil {
		return nil, fmt.Errorf("container %s: mounts of snapshot %q: %w", c.ID, c.SnapshotKey, err)
	}
	return mounts, nil
}

func (s *service) Start(ctx context.Context, req *api.StartRequest) (*api.StartResponse, error) {
	p, err := s.process(ctx, req.GetContainerId(), req.GetExecId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	pid, err := p.Start(ctx)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.StartResponse{Pid: pid}, nil
}

// Delete deletes a stopped task and returns how its init process exited.
// The shim refuses a task whose process still runs.
func (s *service) Delete(ctx context.Context, req *api.DeleteTaskRequest) (*api.DeleteResponse, error) {
	exit, err := s.runtime.Delete(ctx, req.GetContainerId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.DeleteResponse{
		Id:         req.GetContainerId(),
		Pid:        exit.Pid,
		ExitStatus: exit.Status,
		ExitedAt:   timestamp(exit.Timestamp),
	}, nil
}

func (s *service) DeleteProcess(ctx context.Context, req *api.DeleteProcessRequest) (*api.DeleteResponse, error) {
	if req.GetExecId() == "" {
		return nil, errdefs.ToGRPC(fmt.Errorf("exec id is required; delete the task itself with Delete: %w", errdefs.ErrInvalidArgument))
	}
	t, err := s.runtime.Get(ctx, req.GetContainerId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	p, err := t.Process(ctx, req.GetExecId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	exit, err := p.Delete(ctx)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.DeleteResponse{
		Id:         req.GetExecId(),
		Pid:        exit.Pid,
		ExitStatus: exit.Status,
		ExitedAt:   timestamp(exit.Timestamp),
	}, nil
}

func (s *service) Get(ctx context.Context, req *api.GetRequest) (*api.GetResponse, error) {
	p, err := s.process(ctx, req.GetContainerId(), req.GetExecId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	proc, err := processState(ctx, req.GetContainerId(), p)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.GetResponse{Process: proc}, nil
}

// List returns the namespace's tasks, those matching the filter if there
// is one (fields: id, container_id, pid, status, as "running").
func (s *service) List(ctx context.Context, req *api.ListTasksRequest) (*api.ListTasksResponse, error) {
	filter, err := filters.ParseAll(req.GetFilter())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	tasks, err := s.runtime.Tasks(ctx, false)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	resp := &api.ListTasksResponse{}
	for _, t := range tasks {
		proc, err := processState(ctx, t.ID(), t)
		if err != nil {
			// A task deleted since it was listed is simply gone.
			if !errdefs.IsNotFound(err) {
				log.G(ctx).WithError(err).WithField("id", t.ID()).Warn("list task")
			}
			continue
		}
		if filter.Match(adaptProcess(proc)) {
			resp.Tasks = append(resp.Tasks, proc)
		}
	}
	return resp, nil
}

func (s *service) Kill(ctx context.Context, req *api.KillRequest) (*emptypb.Empty, error) {
	p, err := s.process(ctx, req.GetContainerId(), req.GetExecId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if err := p.Kill(ctx, req.GetSignal(), req.GetAll()); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

// Exec adds a process, described by an OCI runtime-spec Process, to the
// task; it is started with Start.
func (s *service) Exec(ctx context.Context, req *api.ExecProcessRequest) (*emptypb.Empty, error) {
	if req.GetExecId() == "" {
		return nil, errdefs.ToGRPC(fmt.Errorf("exec id is required: %w", errdefs.ErrInvalidArgument))
	}
	if req.GetSpec() == nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("exec %s: process spec is required: %w", req.GetExecId(), errdefs.ErrInvalidArgument))
	}
	t, err := s.runtime.Get(ctx, req.GetContainerId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	_, err = t.Exec(ctx, req.GetExecId(), runtime.ExecOpts{
		Spec: req.GetSpec(),
		IO: runtime.IO{
			Stdin:    req.GetStdin(),
			Stdout:   req.GetStdout(),
			Stderr:   req.GetStderr(),
			Terminal: req.GetTerminal(),
		},
	})
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) ResizePty(ctx context.Context, req *api.ResizePtyRequest) (*emptypb.Empty, error) {
	p, err := s.process(ctx, req.GetContainerId(), req.GetExecId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if err := p.ResizePty(ctx, runtime.ConsoleSize{Width: req.GetWidth(), Height: req.GetHeight()}); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

// CloseIO closes the process's stdin, the only stream a client closes.
func (s *service) CloseIO(ctx context.Context, req *api.CloseIORequest) (*emptypb.Empty, error) {
	p, err := s.process(ctx, req.GetContainerId(), req.GetExecId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if req.GetStdin() {
		if err := p.CloseIO(ctx); err != nil {
			return nil, errdefs.ToGRPC(err)
		}
	}
	return &emptypb.Empty{}, nil
}

func (s *service) Pause(ctx context.Context, req *api.PauseTaskRequest) (*emptypb.Empty, error) {
	t, err := s.runtime.Get(ctx, req.GetContainerId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if err := t.Pause(ctx); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) Resume(ctx context.Context, req *api.ResumeTaskRequest) (*emptypb.Empty, error) {
	t, err := s.runtime.Get(ctx, req.GetContainerId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if err := t.Resume(ctx); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) ListPids(ctx context.Context, req *api.ListPidsRequest) (*api.ListPidsResponse, error) {
	t, err := s.runtime.Get(ctx, req.GetContainerId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	pids, err := t.Pids(ctx)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	resp := &api.ListPidsResponse{Processes: make([]*tasktypes.ProcessInfo, 0, len(pids))}
	for _, p := range pids {
		resp.Processes = append(resp.Processes, &tasktypes.ProcessInfo{Pid: p.Pid, Info: p.Info})
	}
	return resp, nil
}

// Checkpoint is not offered: a checkpoint is content written from the
// runtime's image, which this daemon does not make.
func (s *service) Checkpoint(ctx context.Context, req *api.CheckpointTaskRequest) (*api.CheckpointTaskResponse, error) {
	return nil, errdefs.ToGRPC(fmt.Errorf("checkpoint task %s: %w", req.GetContainerId(), errdefs.ErrNotImplemented))
}

func (s *service) Update(ctx context.Context, req *api.UpdateTaskRequest) (*emptypb.Empty, error) {
	t, err := s.runtime.Get(ctx, req.GetContainerId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if err := t.Update(ctx, req.GetResources(), req.GetAnnotations()); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

// Metrics returns the runtime's stats of each task matching the filters
// (fields: id, namespace). A task whose stats cannot be had is left out,
// as in containerd.
func (s *service) Metrics(ctx context.Context, req *api.MetricsRequest) (*api.MetricsResponse, error) {
	filter, err := filters.ParseAll(req.GetFilters()...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	tasks, err := s.runtime.Tasks(ctx, false)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	resp := &api.MetricsResponse{}
	for _, t := range tasks {
		if !filter.Match(adaptTask(t)) {
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
		resp.Metrics = append(resp.Metrics, &types.Metric{
			Timestamp: timestamppb.New(collected),
			Id:        t.ID(),
			Data:      stats,
		})
	}
	return resp, nil
}

// Wait blocks until the process exits and returns how it did.
func (s *service) Wait(ctx context.Context, req *api.WaitRequest) (*api.WaitResponse, error) {
	p, err := s.process(ctx, req.GetContainerId(), req.GetExecId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	exit, err := p.Wait(ctx)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.WaitResponse{ExitStatus: exit.Status, ExitedAt: timestamp(exit.Timestamp)}, nil
}

// process returns the task's init process, or its exec'd process execID.
func (s *service) process(ctx context.Context, id, execID string) (runtime.Process, error) {
	t, err := s.runtime.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if execID == "" {
		return t, nil
	}
	return t.Process(ctx, execID)
}

// processState reports p, of the task containerID, as the API has it.
func processState(ctx context.Context, containerID string, p runtime.Process) (*tasktypes.Process, error) {
	ctx, cancel := context.WithTimeout(ctx, stateTimeout)
	defer cancel()
	st, err := p.State(ctx)
	if err != nil {
		return nil, err
	}
	return &tasktypes.Process{
		ContainerId: containerID,
		Id:          p.ID(),
		Pid:         st.Pid,
		Status:      statusToProto(st.Status),
		Stdin:       st.Stdin,
		Stdout:      st.Stdout,
		Stderr:      st.Stderr,
		Terminal:    st.Terminal,
		ExitStatus:  st.ExitStatus,
		ExitedAt:    timestamp(st.ExitedAt),
	}, nil
}

// statusToProto maps the runtime's statuses to the API's. A deleted
// process has no API status of its own; like any other it is unknown.
func statusToProto(s runtime.Status) tasktypes.Status {
	switch s {
	case runtime.CreatedStatus:
		return tasktypes.Status_CREATED
	case runtime.RunningStatus:
		return tasktypes.Status_RUNNING
	case runtime.StoppedStatus:
		return tasktypes.Status_STOPPED
	case runtime.PausedStatus:
		return tasktypes.Status_PAUSED
	case runtime.PausingStatus:
		return tasktypes.Status_PAUSING
	}
	return tasktypes.Status_UNKNOWN
}

// statusNames are the statuses as containerd clients name them, for
// filters.
var statusNames = map[tasktypes.Status]string{
	tasktypes.Status_CREATED: "created",
	tasktypes.Status_RUNNING: "running",
	tasktypes.Status_STOPPED: "stopped",
	tasktypes.Status_PAUSED:  "paused",
	tasktypes.Status_PAUSING: "pausing",
}

func adaptProcess(p *tasktypes.Process) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) != 1 {
			return "", false
		}
		switch fieldpath[0] {
		case "id":
			return p.GetId(), p.GetId() != ""
		case "container_id":
			return p.GetContainerId(), p.GetContainerId() != ""
		case "pid":
			return strconv.FormatUint(uint64(p.GetPid()), 10), p.GetPid() != 0
		case "status":
			name, ok := statusNames[p.GetStatus()]
			return name, ok
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

// timestamp is t as a protobuf timestamp, or nil when t is not set.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
