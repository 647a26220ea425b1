package v2

import (
	"context"

	"github.com/llitfkitfk/containerd/api/convert"
	taskapi "github.com/llitfkitfk/containerd/api/runtime/task/v2"
	"github.com/llitfkitfk/containerd/runtime"
)

// process is a process exec'd into a shim's task.
type process struct {
	id   string
	task *shimTask
}

var _ runtime.ExecProcess = (*process)(nil)

func (p *process) ID() string { return p.id }

func (p *process) State(ctx context.Context) (runtime.State, error) {
	return state(ctx, p.task, p.id)
}

// Kill signals the process alone: all applies to the init process only.
func (p *process) Kill(ctx context.Context, signal uint32, _ bool) error {
	_, err := p.task.task.Kill(ctx, &taskapi.KillRequest{Id: p.task.ID(), ExecId: p.id, Signal: signal})
	return shimErr(err)
}

func (p *process) ResizePty(ctx context.Context, size runtime.ConsoleSize) error {
	_, err := p.task.task.ResizePty(ctx, &taskapi.ResizePtyRequest{
		Id: p.task.ID(), ExecId: p.id, Width: size.Width, Height: size.Height,
	})
	return shimErr(err)
}

func (p *process) CloseIO(ctx context.Context) error {
	_, err := p.task.task.CloseIO(ctx, &taskapi.CloseIORequest{Id: p.task.ID(), ExecId: p.id, Stdin: true})
	return shimErr(err)
}

func (p *process) Start(ctx context.Context) (uint32, error) {
	resp, err := p.task.task.Start(ctx, &taskapi.StartRequest{Id: p.task.ID(), ExecId: p.id})
	if err != nil {
		return 0, shimErr(err)
	}
	return resp.GetPid(), nil
}

func (p *process) Wait(ctx context.Context) (*runtime.Exit, error) {
	resp, err := p.task.task.Wait(ctx, &taskapi.WaitRequest{Id: p.task.ID(), ExecId: p.id})
	if err != nil {
		return nil, shimErr(err)
	}
	return &runtime.Exit{Status: resp.GetExitStatus(), Timestamp: convert.TimestampFromProto(resp.GetExitedAt())}, nil
}

func (p *process) Delete(ctx context.Context) (*runtime.Exit, error) {
	resp, err := p.task.task.Delete(ctx, &taskapi.DeleteRequest{Id: p.task.ID(), ExecId: p.id})
	if err != nil {
		return nil, shimErr(err)
	}
	return &runtime.Exit{Pid: resp.GetPid(), Status: resp.GetExitStatus(), Timestamp: convert.TimestampFromProto(resp.GetExitedAt())}, nil
}
