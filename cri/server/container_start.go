package server

import (
	"context"
	"fmt"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/services/tasks"
)

// StartContainer makes the container's task with its stdio, sends its
// output to its log and starts it. A start that fails leaves the
// container exited with reason StartError, as in containerd, so that the
// kubelet sees why and removes it.
func (s *Service) StartContainer(ctx context.Context, r *runtime.StartContainerRequest) (_ *runtime.StartContainerResponse, retErr error) {
	ctx = withNamespace(ctx)
	c, err := s.containers.Get(r.GetContainerId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("container %q: %w", r.GetContainerId(), err))
	}
	id := c.Metadata.ID
	err = c.UpdateStatus(func(st store.ContainerStatus) (store.ContainerStatus, error) {
		switch {
		case st.Removing:
			return st, fmt.Errorf("container %s is being removed: %w", id, errdefs.ErrFailedPrecondition)
		case st.Starting:
			return st, fmt.Errorf("container %s is already being started: %w", id, errdefs.ErrFailedPrecondition)
		case st.State() != runtime.ContainerState_CONTAINER_CREATED:
			return st, fmt.Errorf("container %s is %s, not created: %w", id, stateName(st.State()), errdefs.ErrFailedPrecondition)
		}
		st.Starting = true
		return st, nil
	})
	if err != nil {
		return nil, grpcError(err)
	}
	defer func() {
		if retErr == nil {
			return
		}
		// The container cannot be started again: it is exited with the
		// reason, as the kubelet expects.
		msg := retErr.Error()
		if uerr := c.UpdateStatus(func(st store.ContainerStatus) (store.ContainerStatus, error) {
			st.Starting = false
			if st.FinishedAt == 0 {
				st.FinishedAt = time.Now().UnixNano()
				st.ExitCode = exitCodeStartError
				st.Reason = reasonStartError
				st.Message = msg
			}
			return st, nil
		}); uerr != nil {
			log.G(ctx).WithError(uerr).WithField("id", id).Error("CRI: recording a failed start")
		}
		c.MarkStopped()
		retErr = grpcError(retErr)
	}()

	sb, err := s.sandboxes.Get(c.Metadata.SandboxID)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s of container %s: %w", c.Metadata.SandboxID, id, err)
	}
	if sb.Status().State != store.SandboxReady {
		return nil, fmt.Errorf("sandbox %s of container %s is not ready: %w", sb.Metadata.ID, id, errdefs.ErrFailedPrecondition)
	}
	rt, err := s.config.RuntimeFor(sb.Metadata.RuntimeHandler)
	if err != nil {
		return nil, err
	}
	cio := containerIO(c)
	if cio == nil {
		return nil, fmt.Errorf("container %s has no stdio: %w", id, errdefs.ErrFailedPrecondition)
	}
	if err := s.attachLog(c, cio); err != nil {
		return nil, err
	}

	topts := tasks.CreateOpts{IO: cio.IO(), RuntimePath: rt.Path}
	if rt.Type == config.DefaultRuntimeType && rt.Path == "" {
		// The runc shims serve a pod's containers from its sandbox's
		// shim: join it without running the shim's start.
		topts.Group = sb.Metadata.ID
	}
	task, err := s.deps.Tasks.Create(ctx, id, topts)
	if err != nil {
		return nil, fmt.Errorf("creating the task of container %s: %w", id, err)
	}
	defer func() {
		if retErr != nil {
			dctx := context.WithoutCancel(ctx)
			if err := task.Kill(dctx, 9, true); err != nil && !errdefs.IsNotFound(err) {
				log.G(ctx).WithError(err).WithField("id", id).Warn("CRI: killing the task of a failed start")
			}
			if _, err := s.deps.Tasks.Delete(dctx, id); err != nil && !errdefs.IsNotFound(err) {
				log.G(ctx).WithError(err).WithField("id", id).Warn("CRI: deleting the task of a failed start")
			}
		}
	}()
	cio.Pipe()

	defer s.nriBlockSync().Unblock() // nri-hooks
	if err := s.nriStartContainer(ctx, sb, c); err != nil {
		return nil, err
	}
	pid, err := task.Start(ctx)
	if err != nil {
		return nil, fmt.Errorf("starting container %s: %w", id, err)
	}
	if err := c.UpdateStatus(func(st store.ContainerStatus) (store.ContainerStatus, error) {
		st.Starting = false
		st.StartedAt = time.Now().UnixNano()
		if st.FinishedAt != 0 {
			// It exited already and the exit was handled first: it
			// cannot have started after it finished.
			st.StartedAt = min(st.StartedAt, st.FinishedAt)
			return st, nil
		}
		st.Pid = pid
		return st, nil
	}); err != nil {
		return nil, fmt.Errorf("recording the start of container %s: %w", id, err)
	}
	s.emitContainerEvent(ctx, c, runtime.ContainerEventType_CONTAINER_STARTED_EVENT)
	s.nriPostStartContainer(ctx, sb, c) // nri-hooks
	return &runtime.StartContainerResponse{}, nil
}

// stateName is a CRI state as containerd words it in errors.
func stateName(s runtime.ContainerState) string {
	switch s {
	case runtime.ContainerState_CONTAINER_CREATED:
		return "created"
	case runtime.ContainerState_CONTAINER_RUNNING:
		return "running"
	case runtime.ContainerState_CONTAINER_EXITED:
		return "exited"
	}
	return "unknown"
}
