package tasks

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/llitfkitfk/containerd/api/convert"
	api "github.com/llitfkitfk/containerd/api/services/tasks/v1"
	"github.com/llitfkitfk/containerd/api/types"
	tasktypes "github.com/llitfkitfk/containerd/api/types/task"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/runtime"
	"github.com/llitfkitfk/containerd/services"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.GRPCPlugin,
		ID:       "tasks",
		Requires: []plugin.Type{plugin.ServicePlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			l, err := ic.GetByID(plugin.ServicePlugin, services.TasksService)
			if err != nil {
				return nil, err
			}
			return &service{local: l.(*Local)}, nil
		},
	})
}

// service serves the Tasks API over the local service.
type service struct {
	api.UnimplementedTasksServer
	local *Local
}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterTasksServer(server, s)
	return nil
}

func (s *service) Create(ctx context.Context, req *api.CreateTaskRequest) (*api.CreateTaskResponse, error) {
	opts := CreateOpts{
		Rootfs: convert.MountsFromProto(req.GetRootfs()),
		IO: runtime.IO{
			Stdin:    req.GetStdin(),
			Stdout:   req.GetStdout(),
			Stderr:   req.GetStderr(),
			Terminal: req.GetTerminal(),
		},
		Options:        req.GetOptions(),
		RuntimePath:    req.GetRuntimePath(),
		TaskAPIAddress: req.GetTaskApiAddress(),
	}
	if req.GetCheckpoint() != nil {
		cp := convert.DescriptorFromProto(req.GetCheckpoint())
		opts.Checkpoint = &cp
	}
	t, err := s.local.Create(ctx, req.GetContainerId(), opts)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	pid, err := t.PID(ctx)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.CreateTaskResponse{ContainerId: t.ID(), Pid: pid}, nil
}

func (s *service) Start(ctx context.Context, req *api.StartRequest) (*api.StartResponse, error) {
	p, err := s.local.Process(ctx, req.GetContainerId(), req.GetExecId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	pid, err := p.Start(ctx)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.StartResponse{Pid: pid}, nil
}

func (s *service) Delete(ctx context.Context, req *api.DeleteTaskRequest) (*api.DeleteResponse, error) {
	exit, err := s.local.Delete(ctx, req.GetContainerId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return deleteResponse(req.GetContainerId(), exit), nil
}

func (s *service) DeleteProcess(ctx context.Context, req *api.DeleteProcessRequest) (*api.DeleteResponse, error) {
	exit, err := s.local.DeleteProcess(ctx, req.GetContainerId(), req.GetExecId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return deleteResponse(req.GetExecId(), exit), nil
}

func deleteResponse(id string, exit *runtime.Exit) *api.DeleteResponse {
	return &api.DeleteResponse{
		Id:         id,
		Pid:        exit.Pid,
		ExitStatus: exit.Status,
		ExitedAt:   convert.TimestampToProto(exit.Timestamp),
	}
}

func (s *service) Get(ctx context.Context, req *api.GetRequest) (*api.GetResponse, error) {
	st, err := s.local.State(ctx, req.GetContainerId(), req.GetExecId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.GetResponse{Process: convert.ProcessToProto(st)}, nil
}

func (s *service) List(ctx context.Context, req *api.ListTasksRequest) (*api.ListTasksResponse, error) {
	list, err := s.local.List(ctx, req.GetFilter())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	resp := &api.ListTasksResponse{Tasks: make([]*tasktypes.Process, len(list))}
	for i, st := range list {
		resp.Tasks[i] = convert.ProcessToProto(st)
	}
	return resp, nil
}

func (s *service) Kill(ctx context.Context, req *api.KillRequest) (*emptypb.Empty, error) {
	p, err := s.local.Process(ctx, req.GetContainerId(), req.GetExecId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if err := p.Kill(ctx, req.GetSignal(), req.GetAll()); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) Exec(ctx context.Context, req *api.ExecProcessRequest) (*emptypb.Empty, error) {
	_, err := s.local.Exec(ctx, req.GetContainerId(), req.GetExecId(), runtime.ExecOpts{
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
	p, err := s.local.Process(ctx, req.GetContainerId(), req.GetExecId())
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
	p, err := s.local.Process(ctx, req.GetContainerId(), req.GetExecId())
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
	t, err := s.local.Get(ctx, req.GetContainerId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if err := t.Pause(ctx); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) Resume(ctx context.Context, req *api.ResumeTaskRequest) (*emptypb.Empty, error) {
	t, err := s.local.Get(ctx, req.GetContainerId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if err := t.Resume(ctx); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) ListPids(ctx context.Context, req *api.ListPidsRequest) (*api.ListPidsResponse, error) {
	t, err := s.local.Get(ctx, req.GetContainerId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	pids, err := t.Pids(ctx)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	resp := &api.ListPidsResponse{Processes: make([]*tasktypes.ProcessInfo, len(pids))}
	for i, p := range pids {
		resp.Processes[i] = &tasktypes.ProcessInfo{Pid: p.Pid, Info: p.Info}
	}
	return resp, nil
}

// Checkpoint is not offered: a checkpoint is content written from the
// runtime's image, which this daemon does not make.
func (s *service) Checkpoint(ctx context.Context, req *api.CheckpointTaskRequest) (*api.CheckpointTaskResponse, error) {
	return nil, errdefs.ToGRPC(fmt.Errorf("checkpoint task %s: %w", req.GetContainerId(), errdefs.ErrNotImplemented))
}

func (s *service) Update(ctx context.Context, req *api.UpdateTaskRequest) (*emptypb.Empty, error) {
	t, err := s.local.Get(ctx, req.GetContainerId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if err := t.Update(ctx, req.GetResources(), req.GetAnnotations()); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) Metrics(ctx context.Context, req *api.MetricsRequest) (*api.MetricsResponse, error) {
	metrics, err := s.local.Metrics(ctx, req.GetFilters()...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	resp := &api.MetricsResponse{Metrics: make([]*types.Metric, len(metrics))}
	for i, m := range metrics {
		resp.Metrics[i] = convert.MetricToProto(m)
	}
	return resp, nil
}

// Wait blocks until the process exits and returns how it did.
func (s *service) Wait(ctx context.Context, req *api.WaitRequest) (*api.WaitResponse, error) {
	p, err := s.local.Process(ctx, req.GetContainerId(), req.GetExecId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	exit, err := p.Wait(ctx)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.WaitResponse{ExitStatus: exit.Status, ExitedAt: convert.TimestampToProto(exit.Timestamp)}, nil
}
