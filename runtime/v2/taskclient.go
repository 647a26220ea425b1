package v2

import (
	"context"
	"fmt"

	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/emptypb"

	taskapi "github.com/llitfkitfk/containerd/api/runtime/task/v2"
	"github.com/llitfkitfk/containerd/errdefs"
)

// taskService is the ttrpc service name of task API version v. Version 3,
// which shims of containerd 2.x serve, has version 2's methods and
// messages, field for field, under containerd.task.v3.Task; so one client
// speaks both, naming the service the shim said it serves.
func taskService(v int32) (string, error) {
	switch v {
	case 2:
		return "containerd.task.v2.Task", nil
	case 3:
		return "containerd.task.v3.Task", nil
	}
	return "", fmt.Errorf("shim task API version %d unsupported: %w", v, errdefs.ErrNotImplemented)
}

// newTaskClient returns a client of the task API version v over client.
func newTaskClient(client *ttrpc.Client, v int32) (taskapi.TaskService, error) {
	service, err := taskService(v)
	if err != nil {
		return nil, err
	}
	if v == 2 {
		return taskapi.NewTaskClient(client), nil
	}
	return &taskClient{client: client, service: service}, nil
}

type taskClient struct {
	client  *ttrpc.Client
	service string
}

// call is one unary call of the task service, answered in a new Resp.
func call[Resp any](ctx context.Context, c *taskClient, method string, req any) (*Resp, error) {
	var resp Resp
	if err := c.client.Call(ctx, c.service, method, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

func (c *taskClient) State(ctx context.Context, req *taskapi.StateRequest) (*taskapi.StateResponse, error) {
	return call[taskapi.StateResponse](ctx, c, "State", req)
}

func (c *taskClient) Create(ctx context.Context, req *taskapi.CreateTaskRequest) (*taskapi.CreateTaskResponse, error) {
	return call[taskapi.CreateTaskResponse](ctx, c, "Create", req)
}

func (c *taskClient) Start(ctx context.Context, req *taskapi.StartRequest) (*taskapi.StartResponse, error) {
	return call[taskapi.StartResponse](ctx, c, "Start", req)
}

func (c *taskClient) Delete(ctx context.Context, req *taskapi.DeleteRequest) (*taskapi.DeleteResponse, error) {
	return call[taskapi.DeleteResponse](ctx, c, "Delete", req)
}

func (c *taskClient) Pids(ctx context.Context, req *taskapi.PidsRequest) (*taskapi.PidsResponse, error) {
	return call[taskapi.PidsResponse](ctx, c, "Pids", req)
}

func (c *taskClient) Pause(ctx context.Context, req *taskapi.PauseRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, c, "Pause", req)
}

func (c *taskClient) Resume(ctx context.Context, req *taskapi.ResumeRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, c, "Resume", req)
}

func (c *taskClient) Checkpoint(ctx context.Context, req *taskapi.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, c, "Checkpoint", req)
}

func (c *taskClient) Kill(ctx context.Context, req *taskapi.KillRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, c, "Kill", req)
}

func (c *taskClient) Exec(ctx context.Context, req *taskapi.ExecProcessRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, c, "Exec", req)
}

func (c *taskClient) ResizePty(ctx context.Context, req *taskapi.ResizePtyRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, c, "ResizePty", req)
}

func (c *taskClient) CloseIO(ctx context.Context, req *taskapi.CloseIORequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, c, "CloseIO", req)
}

func (c *taskClient) Update(ctx context.Context, req *taskapi.UpdateTaskRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, c, "Update", req)
}

func (c *taskClient) Wait(ctx context.Context, req *taskapi.WaitRequest) (*taskapi.WaitResponse, error) {
	return call[taskapi.WaitResponse](ctx, c, "Wait", req)
}

func (c *taskClient) Stats(ctx context.Context, req *taskapi.StatsRequest) (*taskapi.StatsResponse, error) {
	return call[taskapi.StatsResponse](ctx, c, "Stats", req)
}

func (c *taskClient) Connect(ctx context.Context, req *taskapi.ConnectRequest) (*taskapi.ConnectResponse, error) {
	return call[taskapi.ConnectResponse](ctx, c, "Connect", req)
}

func (c *taskClient) Shutdown(ctx context.Context, req *taskapi.ShutdownRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, c, "Shutdown", req)
}
