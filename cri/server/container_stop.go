package server

import (
	"context"
	"fmt"
	"syscall"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
)

// StopContainer stops a running container: its stop signal, then SIGKILL
// once timeout seconds have passed. Stopping a container that is not
// running, or that does not exist, succeeds (the CRI asks stop to be
// idempotent).
func (s *Service) StopContainer(ctx context.Context, r *runtime.StopContainerRequest) (*runtime.StopContainerResponse, error) {
	ctx = withNamespace(ctx)
	c, err := s.containers.Get(r.GetContainerId())
	if err != nil {
		if errdefs.IsNotFound(err) {
			return &runtime.StopContainerResponse{}, nil
		}
		return nil, grpcError(fmt.Errorf("container %q: %w", r.GetContainerId(), err))
	}
	timeout := time.Duration(r.GetTimeout()) * time.Second
	if r.GetTimeout() < 0 {
		timeout = 0
	}
	defer s.nriBlockSync().Unblock() // nri-hooks
	if err := s.stopContainer(ctx, c, timeout); err != nil {
		return nil, grpcError(err)
	}
	s.nriStopContainer(ctx, c) // nri-hooks
	return &runtime.StopContainerResponse{}, nil
}

// stopContainer stops a container: its stop signal, then SIGKILL after
// timeout (0: at once); it returns once the container has exited. The
// sandbox work calls it for StopPodSandbox.
func (s *Service) stopContainer(ctx context.Context, c *store.Container, timeout time.Duration) error {
	ctx = withNamespace(ctx)
	id := c.Metadata.ID
	st := c.Status()
	if st.State() != runtime.ContainerState_CONTAINER_RUNNING {
		// Created (no task yet), exited or unknown: nothing runs.
		return nil
	}
	task, err := s.deps.Tasks.Get(ctx, id)
	if err != nil {
		if errdefs.IsNotFound(err) {
			// Gone without an exit seen: record it so, as containerd does.
			s.handleContainerExit(ctx, c, exitCodeUnknown, time.Now(), reasonUnknown)
			return nil
		}
		return fmt.Errorf("task of container %s: %w", id, err)
	}

	// Wait for the exit ourselves as well as through the event monitor:
	// the stop then never depends on an event being delivered.
	waited := make(chan struct{})
	wctx, cancelWait := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWait()
	go func() {
		defer close(waited)
		exit, err := task.Wait(wctx)
		if err != nil {
			return
		}
		s.handleContainerExit(wctx, c, exit.Status, exit.Timestamp, "")
	}()

	if timeout > 0 {
		sig := syscall.SIGTERM
		if c.Metadata.StopSignal != "" {
			if sig, err = parseSignal(c.Metadata.StopSignal); err != nil {
				log.G(ctx).WithError(err).WithField("id", id).Warn("CRI: bad stop signal; using SIGTERM")
				sig = syscall.SIGTERM
			}
		}
		if err := task.Kill(ctx, uint32(sig), false); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("sending %v to container %s: %w", sig, id, err)
		}
		timer := time.NewTimer(timeout)
		select {
		case <-c.Stopped():
			timer.Stop()
			return nil
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("waiting for container %s to stop: %w", id, ctx.Err())
		case <-timer.C:
		}
	}
	if err := task.Kill(ctx, uint32(syscall.SIGKILL), false); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("killing container %s: %w", id, err)
	}
	select {
	case <-c.Stopped():
		return nil
	case <-waited:
		// Wait failed (the shim went away): the container is gone with it.
		select {
		case <-c.Stopped():
		default:
			s.handleContainerExit(ctx, c, exitCodeUnknown, time.Now(), reasonUnknown)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for container %s to be killed: %w", id, ctx.Err())
	}
}
