package server

import (
	"context"
	"encoding/json"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/spec"
	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
)

// UpdateContainerResources changes a created or running container's
// resources: in its spec (for a later start, and for what a restarted
// daemon reads), in its running task, and in its reported status. The
// container's lock is held throughout, so that two updates, or an update
// and a start, cannot interleave.
func (s *Service) UpdateContainerResources(ctx context.Context, r *runtime.UpdateContainerResourcesRequest) (*runtime.UpdateContainerResourcesResponse, error) {
	ctx = withNamespace(ctx)
	c, err := s.containers.Get(r.GetContainerId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("container %q: %w", r.GetContainerId(), err))
	}
	if r.GetLinux() == nil {
		// Windows resources mean nothing here; nothing to change.
		return &runtime.UpdateContainerResourcesResponse{}, nil
	}
	if r.Linux, err = s.nriUpdateContainer(ctx, c, r.GetLinux()); err != nil {
		return nil, grpcError(err)
	}
	id := c.Metadata.ID
	err = c.UpdateStatus(func(st store.ContainerStatus) (store.ContainerStatus, error) {
		state := st.State()
		if st.Starting || st.Removing || (state != runtime.ContainerState_CONTAINER_RUNNING && state != runtime.ContainerState_CONTAINER_CREATED) {
			return st, fmt.Errorf("container %s is in %s state: resources can be updated only while created or running: %w", id, stateName(state), errdefs.ErrFailedPrecondition)
		}
		record, err := s.deps.Containers.Get(ctx, id)
		if err != nil {
			return st, fmt.Errorf("record of container %s: %w", id, err)
		}
		var sp specs.Spec
		if err := json.Unmarshal(record.Spec.GetValue(), &sp); err != nil {
			return st, fmt.Errorf("spec of container %s: %w", id, err)
		}
		// What the request leaves zero keeps the spec's value.
		newSpec, err := spec.UpdateResources(&sp, r.GetLinux(), s.config)
		if err != nil {
			return st, fmt.Errorf("container %s: %w", id, err)
		}
		var res *specs.LinuxResources
		if newSpec.Linux != nil {
			res = newSpec.Linux.Resources
		}
		if res == nil {
			return st, fmt.Errorf("container %s: no resources to set: %w", id, errdefs.ErrInvalidArgument)
		}
		specJSON, err := json.Marshal(newSpec)
		if err != nil {
			return st, err
		}
		oldSpec := record.Spec
		record.Spec = &anypb.Any{TypeUrl: specTypeURL, Value: specJSON}
		if _, err := s.deps.Containers.Update(ctx, record, "spec"); err != nil {
			return st, fmt.Errorf("updating the spec of container %s: %w", id, err)
		}
		if state == runtime.ContainerState_CONTAINER_RUNNING {
			resJSON, err := json.Marshal(res)
			if err == nil {
				err = s.updateTask(ctx, id, &anypb.Any{TypeUrl: resourcesTypeURL, Value: resJSON}, r.GetAnnotations())
			}
			if err != nil {
				// The spec must say what runs.
				record.Spec = oldSpec
				if _, uerr := s.deps.Containers.Update(ctx, record, "spec"); uerr != nil {
					log.G(ctx).WithError(uerr).WithField("id", id).Error("CRI: restoring a container's spec after a failed update")
				}
				return st, err
			}
		}
		st.Resources = mergeResources(st.Resources, r.GetLinux())
		return st, nil
	})
	if err != nil {
		return nil, grpcError(err)
	}
	s.nriPostUpdateContainer(ctx, c) // nri-hooks
	return &runtime.UpdateContainerResourcesResponse{}, nil
}

func (s *Service) updateTask(ctx context.Context, id string, res *anypb.Any, annotations map[string]string) error {
	task, err := s.deps.Tasks.Get(ctx, id)
	if err != nil {
		if errdefs.IsNotFound(err) {
			// It exited meanwhile: nothing runs to update.
			return nil
		}
		return fmt.Errorf("task of container %s: %w", id, err)
	}
	if err := task.Update(ctx, res, annotations); err != nil {
		return fmt.Errorf("updating the resources of container %s: %w", id, err)
	}
	return nil
}

// ReopenContainerLog reopens a running container's log file, after the
// kubelet rotated it: new output goes to a new file at the same path.
func (s *Service) ReopenContainerLog(ctx context.Context, r *runtime.ReopenContainerLogRequest) (*runtime.ReopenContainerLogResponse, error) {
	c, err := s.containers.Get(r.GetContainerId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("container %q: %w", r.GetContainerId(), err))
	}
	if st := c.Status().State(); st != runtime.ContainerState_CONTAINER_RUNNING {
		return nil, grpcError(fmt.Errorf("container %s is %s, not running: %w", c.Metadata.ID, stateName(st), errdefs.ErrFailedPrecondition))
	}
	cio := containerIO(c)
	if cio == nil {
		return nil, grpcError(fmt.Errorf("container %s has no stdio: %w", c.Metadata.ID, errdefs.ErrFailedPrecondition))
	}
	if err := s.attachLog(c, cio); err != nil {
		return nil, grpcError(err)
	}
	return &runtime.ReopenContainerLogResponse{}, nil
}

// mergeResources is the status's resources after an update: the update's
// non-zero values over the old ones, as the spec got them.
func mergeResources(old *runtime.ContainerResources, upd *runtime.LinuxContainerResources) *runtime.ContainerResources {
	linux := proto.Clone(upd).(*runtime.LinuxContainerResources)
	if prev := old.GetLinux(); prev != nil {
		linux = proto.Clone(prev).(*runtime.LinuxContainerResources)
		if len(upd.GetHugepageLimits()) > 0 {
			// Lists would be appended to: the update's replaces them.
			linux.HugepageLimits = nil
		}
		proto.Merge(linux, upd)
	}
	return &runtime.ContainerResources{Linux: linux}
}
