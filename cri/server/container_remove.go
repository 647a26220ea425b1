package server

import (
	"context"
	"fmt"
	"os"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/snapshots"
)

// RemoveContainer removes a container, stopping it first if it runs; a
// container that does not exist is removed already.
func (s *Service) RemoveContainer(ctx context.Context, r *runtime.RemoveContainerRequest) (*runtime.RemoveContainerResponse, error) {
	ctx = withNamespace(ctx)
	c, err := s.containers.Get(r.GetContainerId())
	if err != nil {
		if errdefs.IsNotFound(err) {
			return &runtime.RemoveContainerResponse{}, nil
		}
		return nil, grpcError(fmt.Errorf("container %q: %w", r.GetContainerId(), err))
	}
	defer s.nriBlockSync().Unblock() // nri-hooks
	if err := s.removeContainer(ctx, c); err != nil {
		return nil, grpcError(err)
	}
	return &runtime.RemoveContainerResponse{}, nil
}

// removeContainer removes a container (stopping it first if it runs):
// its task, record, snapshot, IO and files. The sandbox work calls it for
// RemovePodSandbox.
func (s *Service) removeContainer(ctx context.Context, c *store.Container) error {
	ctx = withNamespace(ctx)
	id := c.Metadata.ID
	if err := s.stopContainer(ctx, c, 0); err != nil {
		return fmt.Errorf("stopping container %s before removing it: %w", id, err)
	}
	err := c.UpdateStatus(func(st store.ContainerStatus) (store.ContainerStatus, error) {
		if st.Removing {
			return st, fmt.Errorf("container %s is already being removed: %w", id, errdefs.ErrFailedPrecondition)
		}
		if st.Starting {
			return st, fmt.Errorf("container %s is being started: %w", id, errdefs.ErrFailedPrecondition)
		}
		st.Removing = true
		return st, nil
	})
	if err != nil {
		return err
	}
	undo := func() {
		c.UpdateStatus(func(st store.ContainerStatus) (store.ContainerStatus, error) {
			st.Removing = false
			return st, nil
		})
	}
	if _, err := s.deps.Tasks.Delete(ctx, id); err != nil && !errdefs.IsNotFound(err) {
		undo()
		return fmt.Errorf("deleting the task of container %s: %w", id, err)
	}
	record, err := s.deps.Containers.Get(ctx, id)
	if err == nil || errdefs.IsNotFound(err) {
		// Unmounted before the record goes, so that a failure leaves
		// the container to remove again.
		var sn snapshots.Snapshotter
		if err == nil {
			sn = s.deps.Snapshotters[record.Snapshotter]
		}
		if err := s.removeImageVolumes(ctx, id, c.Metadata.Config, sn); err != nil {
			undo()
			return err
		}
	}
	switch {
	case err == nil:
		if err := s.deps.Containers.Delete(ctx, id); err != nil && !errdefs.IsNotFound(err) {
			undo()
			return fmt.Errorf("deleting the record of container %s: %w", id, err)
		}
		if sn, ok := s.deps.Snapshotters[record.Snapshotter]; ok && record.SnapshotKey != "" {
			if err := sn.Remove(ctx, record.SnapshotKey); err != nil && !errdefs.IsNotFound(err) {
				// Garbage collection takes it: no record holds it now.
				log.G(ctx).WithError(err).WithField("id", id).Warn("CRI: removing a container's snapshot")
			}
		}
	case !errdefs.IsNotFound(err):
		undo()
		return fmt.Errorf("record of container %s: %w", id, err)
	}
	if cio := containerIO(c); cio != nil {
		cio.Close()
	}
	for _, dir := range []string{s.containerRootDir(id), s.containerStateDir(id)} {
		if err := os.RemoveAll(dir); err != nil {
			log.G(ctx).WithError(err).WithField("id", id).Warn("CRI: removing a container's files")
		}
	}
	s.nriRemoveContainer(ctx, c) // nri-hooks
	s.containers.Delete(id)
	forgetExitLock(c)
	containerCPUSamples.forget(id)
	s.emitContainerEvent(ctx, c, runtime.ContainerEventType_CONTAINER_DELETED_EVENT)
	return nil
}
