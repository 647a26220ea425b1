package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/log"
)

// ContainerStatus reports a container; verbose adds containerd's "info"
// JSON (pid, spec, sandbox, runtime) that crictl inspect shows.
func (s *Service) ContainerStatus(ctx context.Context, r *runtime.ContainerStatusRequest) (*runtime.ContainerStatusResponse, error) {
	ctx = withNamespace(ctx)
	c, err := s.containers.Get(r.GetContainerId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("container %q: %w", r.GetContainerId(), err))
	}
	var record *containers.Container
	var ociSpec *specs.Spec
	if rec, err := s.deps.Containers.Get(ctx, c.Metadata.ID); err == nil {
		record = &rec
		if rec.Spec != nil {
			var sp specs.Spec
			if err := json.Unmarshal(rec.Spec.GetValue(), &sp); err == nil {
				ociSpec = &sp
			}
		}
	} else {
		log.G(ctx).WithError(err).WithField("id", c.Metadata.ID).Debug("container record for status")
	}
	st := s.criContainerStatus(c, ociSpec)
	s.fillImageStatus(ctx, c, st)
	resp := &runtime.ContainerStatusResponse{Status: st}
	if r.GetVerbose() {
		info, err := containerInfo(c, record, ociSpec)
		if err != nil {
			return nil, grpcError(err)
		}
		resp.Info = map[string]string{"info": info}
	}
	return resp, nil
}

// criContainerStatus is the CRI status of c from the store alone (and
// the user from its spec, if given): what ListContainers and the events
// need without a lookup.
func (s *Service) criContainerStatus(c *store.Container, ociSpec *specs.Spec) *runtime.ContainerStatus {
	md, st := c.Metadata, c.Status()
	cfg := md.Config
	out := &runtime.ContainerStatus{
		Id:          md.ID,
		Metadata:    cfg.GetMetadata(),
		State:       st.State(),
		CreatedAt:   st.CreatedAt,
		StartedAt:   st.StartedAt,
		FinishedAt:  st.FinishedAt,
		ExitCode:    st.ExitCode,
		Image:       cfg.GetImage(),
		ImageRef:    md.ImageRef,
		ImageId:     md.ImageRef,
		Reason:      st.Reason,
		Message:     st.Message,
		Labels:      cfg.GetLabels(),
		Annotations: cfg.GetAnnotations(),
		LogPath:     md.LogPath,
		Resources:   st.Resources,
		StopSignal:  toCRISignal(md.StopSignal),
	}
	if out.State == runtime.ContainerState_CONTAINER_EXITED && out.Reason == "" {
		out.Reason = exitReason(st.ExitCode)
	}
	for _, m := range cfg.GetMounts() {
		out.Mounts = append(out.Mounts, &runtime.Mount{
			ContainerPath:     m.GetContainerPath(),
			HostPath:          m.GetHostPath(),
			Readonly:          m.GetReadonly(),
			SelinuxRelabel:    m.GetSelinuxRelabel(),
			Propagation:       m.GetPropagation(),
			UidMappings:       m.GetUidMappings(),
			GidMappings:       m.GetGidMappings(),
			RecursiveReadOnly: m.GetRecursiveReadOnly(),
			Image:             m.GetImage(),
			ImageSubPath:      m.GetImageSubPath(),
		})
	}
	if ociSpec != nil && ociSpec.Process != nil {
		u := ociSpec.Process.User
		lu := &runtime.LinuxContainerUser{Uid: int64(u.UID), Gid: int64(u.GID)}
		for _, g := range u.AdditionalGids {
			lu.SupplementalGroups = append(lu.SupplementalGroups, int64(g))
		}
		out.User = &runtime.ContainerUser{Linux: lu}
	}
	return out
}

// exitReason is the reason of an exit that has none of its own.
func exitReason(code int32) string {
	if code == 0 {
		return reasonCompleted
	}
	return reasonError
}

// fillImageStatus names the image as the kubelet expects: the image by a
// tag of it, image_ref by its repo digest when it has one, image_id by its
// config digest.
func (s *Service) fillImageStatus(ctx context.Context, c *store.Container, st *runtime.ContainerStatus) {
	if s.deps.Images == nil {
		return
	}
	img, err := s.deps.Images.LocalResolve(ctx, c.Metadata.ImageRef)
	if err != nil {
		// The image was removed since: report what the container was made
		// with.
		return
	}
	st.ImageId = img.ID
	var tag, digestRef string
	for _, ref := range img.References {
		if strings.Contains(ref, "@") {
			if digestRef == "" {
				digestRef = ref
			}
		} else if tag == "" {
			tag = ref
		}
	}
	if tag != "" {
		cfgImage := c.Metadata.Config.GetImage()
		st.Image = &runtime.ImageSpec{
			Image:              tag,
			Annotations:        cfgImage.GetAnnotations(),
			UserSpecifiedImage: cfgImage.GetUserSpecifiedImage(),
			RuntimeHandler:     cfgImage.GetRuntimeHandler(),
		}
	}
	if digestRef != "" {
		st.ImageRef = digestRef
	}
}

// containerInfo is the verbose info, with containerd's keys.
func containerInfo(c *store.Container, record *containers.Container, ociSpec *specs.Spec) (string, error) {
	st := c.Status()
	info := struct {
		SandboxID      string                   `json:"sandboxID"`
		Pid            uint32                   `json:"pid"`
		Removing       bool                     `json:"removing"`
		SnapshotKey    string                   `json:"snapshotKey,omitempty"`
		Snapshotter    string                   `json:"snapshotter,omitempty"`
		RuntimeType    string                   `json:"runtimeType,omitempty"`
		RuntimeOptions any                      `json:"runtimeOptions,omitempty"`
		Config         *runtime.ContainerConfig `json:"config"`
		RuntimeSpec    *specs.Spec              `json:"runtimeSpec,omitempty"`
	}{
		SandboxID:   c.Metadata.SandboxID,
		Pid:         st.Pid,
		Removing:    st.Removing,
		Config:      c.Metadata.Config,
		RuntimeSpec: ociSpec,
	}
	if record != nil {
		info.SnapshotKey = record.SnapshotKey
		info.Snapshotter = record.Snapshotter
		info.RuntimeType = record.Runtime.Name
		if o := record.Runtime.Options; o != nil {
			if m, err := o.UnmarshalNew(); err == nil {
				info.RuntimeOptions = m
			}
		}
	}
	b, err := json.Marshal(info)
	if err != nil {
		return "", fmt.Errorf("container %s info: %w", c.Metadata.ID, err)
	}
	return string(b), nil
}

// ListContainers lists the containers matching the filter: id (or a
// unique prefix of one), state, pod sandbox id (or prefix) and labels.
func (s *Service) ListContainers(ctx context.Context, r *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	var out []*runtime.Container
	for _, c := range s.filterContainers(r.GetFilter()) {
		st := c.Status()
		out = append(out, &runtime.Container{
			Id:           c.Metadata.ID,
			PodSandboxId: c.Metadata.SandboxID,
			Metadata:     c.Metadata.Config.GetMetadata(),
			Image:        c.Metadata.Config.GetImage(),
			ImageRef:     c.Metadata.ImageRef,
			ImageId:      c.Metadata.ImageRef,
			State:        st.State(),
			CreatedAt:    st.CreatedAt,
			Labels:       c.Metadata.Config.GetLabels(),
			Annotations:  c.Metadata.Config.GetAnnotations(),
		})
	}
	return &runtime.ListContainersResponse{Containers: out}, nil
}

// containerFilter is what ListContainers and ListContainerStats filter on.
type containerFilter struct {
	id, sandboxID string
	state         *runtime.ContainerStateValue
	labels        map[string]string
}

func (s *Service) filterContainers(f *runtime.ContainerFilter) []*store.Container {
	return s.matchContainers(containerFilter{
		id: f.GetId(), sandboxID: f.GetPodSandboxId(), state: f.GetState(), labels: f.GetLabelSelector(),
	})
}

// matchContainers applies a filter. Ids are resolved as crictl's short
// ids are (a prefix matching one object); one matching nothing matches no
// container rather than failing, as in containerd.
func (s *Service) matchContainers(f containerFilter) []*store.Container {
	if f.id != "" {
		c, err := s.containers.Get(f.id)
		if err != nil {
			return nil
		}
		f.id = c.Metadata.ID
	}
	if f.sandboxID != "" {
		if sb, err := s.sandboxes.Get(f.sandboxID); err == nil {
			f.sandboxID = sb.Metadata.ID
		}
	}
	var out []*store.Container
	for _, c := range s.containers.List() {
		if f.id != "" && c.Metadata.ID != f.id {
			continue
		}
		if f.sandboxID != "" && c.Metadata.SandboxID != f.sandboxID {
			continue
		}
		if f.state != nil && c.Status().State() != f.state.GetState() {
			continue
		}
		if !matchLabels(c.Metadata.Config.GetLabels(), f.labels) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// matchLabels: every selector key is present with its value.
func matchLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
