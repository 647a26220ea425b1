package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
)

// StopPodSandbox stops a pod: its containers at once, its pause
// container, then its network. Stopping a stopped or unknown sandbox
// succeeds (the CRI asks for idempotence).
func (s *Service) StopPodSandbox(ctx context.Context, r *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	ctx = withNamespace(ctx)
	sb, err := s.sandboxes.Get(r.GetPodSandboxId())
	if err != nil {
		if errdefs.IsNotFound(err) {
			return &runtime.StopPodSandboxResponse{}, nil
		}
		return nil, errdefs.ToGRPC(err)
	}
	defer s.nriBlockSync().Unblock() // nri-hooks
	if err := s.stopSandbox(ctx, sb); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &runtime.StopPodSandboxResponse{}, nil
}

func (s *Service) stopSandbox(ctx context.Context, sb *store.Sandbox) error {
	id := sb.Metadata.ID
	for _, c := range s.containers.List() {
		if c.Metadata.SandboxID != id {
			continue
		}
		if err := s.stopContainer(ctx, c, 0); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("stop container %s of sandbox %s: %w", c.Metadata.ID, id, err)
		}
	}
	if st := sb.Status().State; st == store.SandboxReady || st == store.SandboxUnknown {
		if err := s.stopPause(ctx, sb); err != nil {
			return err
		}
	}
	s.nriStopPodSandbox(ctx, sb) // nri-hooks
	if err := s.teardownNetwork(ctx, &sb.Metadata); err != nil {
		return fmt.Errorf("network teardown of sandbox %s: %w", id, err)
	}
	return s.unmountSandboxShm(&sb.Metadata)
}

// stopPause kills the pause container and waits for it to exit.
func (s *Service) stopPause(ctx context.Context, sb *store.Sandbox) error {
	id := sb.Metadata.ID
	task, err := s.deps.Tasks.Get(ctx, id)
	if errdefs.IsNotFound(err) {
		// Gone while the daemon was down, or deleted by the exit handler.
		s.sandboxExited(ctx, sb, 255, time.Now())
		return nil
	}
	if err != nil {
		return fmt.Errorf("pause task of sandbox %s: %w", id, err)
	}
	if err := task.Kill(ctx, uint32(unix.SIGKILL), false); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("kill sandbox %s: %w", id, err)
	}
	exit, err := task.Wait(ctx)
	switch {
	case errdefs.IsNotFound(err):
		s.sandboxExited(ctx, sb, 255, time.Now())
	case err != nil:
		return fmt.Errorf("wait for sandbox %s: %w", id, err)
	default:
		s.sandboxExited(ctx, sb, exit.Status, exit.Timestamp)
	}
	return nil
}

// handleSandboxExit is called by the event monitor when a sandbox's pause
// container exits.
func (s *Service) handleSandboxExit(ctx context.Context, id string, exitStatus uint32, exitedAtUnixNano int64) {
	sb, err := s.sandboxes.Get(id)
	if err != nil {
		return
	}
	s.sandboxExited(withNamespace(ctx), sb, exitStatus, time.Unix(0, exitedAtUnixNano))
}

// sandboxExited records the pause container's exit once (StopPodSandbox
// and the event monitor both get here), deletes its task and sends the
// CONTAINER_STOPPED event.
func (s *Service) sandboxExited(ctx context.Context, sb *store.Sandbox, exitStatus uint32, at time.Time) {
	changed := false
	_ = sb.UpdateStatus(func(st store.SandboxStatus) (store.SandboxStatus, error) {
		if st.State == store.SandboxNotReady {
			return st, nil
		}
		changed = true
		st.State, st.Pid, st.ExitStatus, st.ExitedAt = store.SandboxNotReady, 0, exitStatus, at
		return st, nil
	})
	sb.MarkStopped()
	if err := s.deletePauseTask(ctx, sb.Metadata.ID); err != nil {
		log.G(ctx).WithError(err).WithField("sandbox", sb.Metadata.ID).Warn("delete the exited pause task")
	}
	if changed {
		s.emitSandboxEvent(ctx, sb, runtime.ContainerEventType_CONTAINER_STOPPED_EVENT)
	}
}

// RemovePodSandbox removes a pod: stops it if need be, removes its
// containers, its pause container's record and snapshot, its files.
// Removing an unknown sandbox succeeds.
func (s *Service) RemovePodSandbox(ctx context.Context, r *runtime.RemovePodSandboxRequest) (*runtime.RemovePodSandboxResponse, error) {
	ctx = withNamespace(ctx)
	sb, err := s.sandboxes.Get(r.GetPodSandboxId())
	if err != nil {
		if errdefs.IsNotFound(err) {
			return &runtime.RemovePodSandboxResponse{}, nil
		}
		return nil, errdefs.ToGRPC(err)
	}
	defer s.nriBlockSync().Unblock() // nri-hooks
	if err := s.removeSandbox(ctx, sb); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &runtime.RemovePodSandboxResponse{}, nil
}

func (s *Service) removeSandbox(ctx context.Context, sb *store.Sandbox) error {
	id := sb.Metadata.ID
	if err := s.stopSandbox(ctx, sb); err != nil {
		return fmt.Errorf("stop sandbox %s before removing it: %w", id, err)
	}
	for _, c := range s.containers.List() {
		if c.Metadata.SandboxID != id {
			continue
		}
		if err := s.removeContainer(ctx, c); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("remove container %s of sandbox %s: %w", c.Metadata.ID, id, err)
		}
	}
	if err := s.deletePauseTask(ctx, id); err != nil {
		return fmt.Errorf("delete the task of sandbox %s: %w", id, err)
	}
	rec, err := s.deps.Containers.Get(ctx, id)
	switch {
	case errdefs.IsNotFound(err):
	case err != nil:
		return err
	default:
		if err := ignoreNotFound(s.deps.Containers.Delete(ctx, id)); err != nil {
			return fmt.Errorf("container record of sandbox %s: %w", id, err)
		}
		if sn, ok := s.deps.Snapshotters[rec.Snapshotter]; ok && rec.SnapshotKey != "" {
			if err := ignoreNotFound(sn.Remove(ctx, rec.SnapshotKey)); err != nil {
				// The garbage collector takes it: nothing references it.
				log.G(ctx).WithError(err).WithField("sandbox", id).Warn("remove the pause snapshot")
			}
		}
	}
	if err := s.removeSandboxFiles(&sb.Metadata); err != nil {
		return fmt.Errorf("files of sandbox %s: %w", id, err)
	}
	s.nriRemovePodSandbox(ctx, sb) // nri-hooks
	s.emitSandboxEvent(ctx, sb, runtime.ContainerEventType_CONTAINER_DELETED_EVENT)
	s.sandboxes.Delete(id)
	podCPUSamples.forget(id)
	pauseTaskLocks.Delete(id)
	return nil
}

// pauseTaskLocks serialise deleting a pause task: StopPodSandbox, the
// exit event and RemovePodSandbox may all get there at once, and the
// shim refuses a delete while another is under way; after the first, the
// others find no task.
var pauseTaskLocks sync.Map // sandbox id -> *sync.Mutex

// deletePauseTask deletes a sandbox's exited pause task; no task is fine.
func (s *Service) deletePauseTask(ctx context.Context, id string) error {
	l, _ := pauseTaskLocks.LoadOrStore(id, &sync.Mutex{})
	mu := l.(*sync.Mutex)
	mu.Lock()
	defer mu.Unlock()
	_, err := s.deps.Tasks.Delete(ctx, id)
	return ignoreNotFound(err)
}
