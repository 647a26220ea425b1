package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/cri/images"
	criio "github.com/llitfkitfk/containerd/cri/io"
	"github.com/llitfkitfk/containerd/cri/spec"
	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/log"
)

// CreateContainer makes a container in a ready sandbox: its root
// filesystem snapshot on the image, its OCI spec, its record and its
// stdio; no task yet (StartContainer makes it). Whatever was made is
// undone if a later step fails.
func (s *Service) CreateContainer(ctx context.Context, r *runtime.CreateContainerRequest) (*runtime.CreateContainerResponse, error) {
	return s.createContainer(withNamespace(ctx), r, s.deps.Images, spec.Container)
}

// containerImages is what CreateContainer needs of the image service.
type containerImages interface {
	LocalResolve(ctx context.Context, ref string) (images.Image, error)
	Snapshotter(runtimeHandler string) string
}

// containerSpecFunc makes a container's OCI spec (spec.Container).
type containerSpecFunc func(context.Context, spec.ContainerInput) (*specs.Spec, error)

func (s *Service) createContainer(ctx context.Context, r *runtime.CreateContainerRequest, imgs containerImages, makeSpec containerSpecFunc) (_ *runtime.CreateContainerResponse, retErr error) {
	cfg := r.GetConfig()
	switch {
	case cfg == nil:
		return nil, grpcError(fmt.Errorf("container config is required: %w", errdefs.ErrInvalidArgument))
	case cfg.GetMetadata() == nil || cfg.GetMetadata().GetName() == "":
		return nil, grpcError(fmt.Errorf("container config: metadata.name is required: %w", errdefs.ErrInvalidArgument))
	case cfg.GetImage().GetImage() == "":
		return nil, grpcError(fmt.Errorf("container config: image is required: %w", errdefs.ErrInvalidArgument))
	}
	if err := validateImageMounts(cfg.GetMounts()); err != nil {
		return nil, grpcError(err)
	}
	stopSignal, err := criStopSignal(cfg.GetStopSignal())
	if err != nil {
		return nil, grpcError(err)
	}
	sb, err := s.sandboxes.Get(r.GetPodSandboxId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("sandbox %q: %w", r.GetPodSandboxId(), err))
	}
	if st := sb.Status().State; st != store.SandboxReady {
		return nil, grpcError(fmt.Errorf("sandbox %s is not ready: %w", sb.Metadata.ID, errdefs.ErrFailedPrecondition))
	}
	sbCfg := sb.Metadata.Config

	id := newID()
	name := makeContainerName(cfg.GetMetadata(), sbCfg.GetMetadata())
	if err := s.containers.Reserve(name, id); err != nil {
		return nil, grpcError(fmt.Errorf("container name %q: %w", name, err))
	}
	defer func() {
		if retErr != nil {
			s.containers.Release(name, id)
		}
	}()

	img, err := imgs.LocalResolve(ctx, cfg.GetImage().GetImage())
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, grpcError(fmt.Errorf("image %q is not present (pull it first): %w", cfg.GetImage().GetImage(), err))
		}
		return nil, grpcError(fmt.Errorf("image %q: %w", cfg.GetImage().GetImage(), err))
	}
	rt, err := s.config.RuntimeFor(sb.Metadata.RuntimeHandler)
	if err != nil {
		return nil, grpcError(err)
	}
	runcOpts, err := rt.RuncOptions()
	if err != nil {
		return nil, grpcError(fmt.Errorf("runtime %q options: %w", sb.Metadata.RuntimeHandler, err))
	}
	snName := imgs.Snapshotter(sb.Metadata.RuntimeHandler)
	sn, ok := s.deps.Snapshotters[snName]
	if !ok {
		return nil, grpcError(fmt.Errorf("snapshotter %q is not loaded: %w", snName, errdefs.ErrFailedPrecondition))
	}

	// A short lease holds the snapshot until the record refers to it, so
	// that garbage collection cannot take it in between.
	lease, err := s.deps.Leases.Create(ctx, leases.WithExpiration(10*time.Minute))
	if err != nil {
		return nil, grpcError(fmt.Errorf("lease for container %s: %w", id, err))
	}
	defer func() {
		if err := s.deps.Leases.Delete(context.WithoutCancel(ctx), lease); err != nil {
			log.G(ctx).WithError(err).Warn("deleting the create lease")
		}
	}()
	lctx := leases.WithLease(ctx, lease.ID)

	mounts, err := prepareRootfs(lctx, sn, id, img.ChainID.String(), podUserns(sbCfg))
	if err != nil {
		return nil, grpcError(fmt.Errorf("preparing the root filesystem of container %s: %w", id, err))
	}
	defer func() {
		if retErr != nil {
			if err := sn.Remove(context.WithoutCancel(ctx), id); err != nil && !errdefs.IsNotFound(err) {
				log.G(ctx).WithError(err).WithField("id", id).Warn("removing the snapshot of a failed create")
			}
		}
	}()

	// Image volumes: from here on cfg has their host paths.
	vols, err := s.mountImageVolumes(lctx, id, cfg, imgs, sn, snName)
	if err != nil {
		return nil, grpcError(err)
	}
	defer func() {
		if retErr != nil {
			if err := s.removeImageVolumes(context.WithoutCancel(ctx), id, cfg, sn); err != nil {
				log.G(ctx).WithError(err).WithField("id", id).Warn("removing the image volumes of a failed create")
			}
		}
	}()
	cfg = vols.config

	sbStatus := sb.Status()
	paths := s.sandboxPaths(&sb.Metadata)
	var targetPid uint32
	nsOpts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if nsOpts.GetPid() == runtime.NamespaceMode_TARGET {
		target, err := s.containers.Get(nsOpts.GetTargetId())
		if err != nil {
			return nil, grpcError(fmt.Errorf("pid namespace target container %q: %w", nsOpts.GetTargetId(), err))
		}
		if target.Metadata.SandboxID != sb.Metadata.ID {
			return nil, grpcError(fmt.Errorf("pid namespace target container %s is not in sandbox %s: %w", target.Metadata.ID, sb.Metadata.ID, errdefs.ErrInvalidArgument))
		}
		if targetPid = target.Status().Pid; targetPid == 0 {
			return nil, grpcError(fmt.Errorf("pid namespace target container %s is not running: %w", target.Metadata.ID, errdefs.ErrFailedPrecondition))
		}
	}
	imageName := cfg.GetImage().GetUserSpecifiedImage()
	if imageName == "" {
		imageName = cfg.GetImage().GetImage()
		if len(img.References) > 0 {
			imageName = img.References[0]
		}
	}
	ociSpec, err := makeSpec(ctx, spec.ContainerInput{
		ID:                      id,
		SandboxID:               sb.Metadata.ID,
		SandboxPid:              sbStatus.Pid,
		TargetPid:               targetPid,
		ImageName:               imageName,
		VolumesDir:              filepath.Join(s.containerRootDir(id), "volumes"),
		RecursiveReadOnlyMounts: recursiveReadOnlySupported(),
		NetNSPath:               s.sandboxNetNSPath(sb),
		Config:                  cfg,
		SandboxConfig:           sbCfg,
		Image:                   img.Spec.Config,
		Rootfs:                  mounts,
		HostnamePath:            paths.Hostname,
		HostsPath:               paths.Hosts,
		ResolvPath:              paths.Resolv,
		ShmPath:                 paths.Shm,
		CgroupsPath:             spec.CgroupsPath(sbCfg.GetLinux().GetCgroupParent(), id, runcOpts.SystemdCgroup),
		Runtime:                 rt,
		CRI:                     s.config,
	})
	if err != nil {
		return nil, grpcError(fmt.Errorf("spec of container %s: %w", id, err))
	}
	defer s.nriBlockSync().Unblock() // nri-hooks
	if err := s.nriCreateContainer(ctx, sb, id, cfg, ociSpec); err != nil {
		return nil, grpcError(err)
	}
	defer s.nriCreateFailed(ctx, sb, id, cfg, ociSpec, &retErr) // nri-hooks
	specJSON, err := json.Marshal(ociSpec)
	if err != nil {
		return nil, grpcError(err)
	}
	optsAny, err := anypb.New(runcOpts)
	if err != nil {
		return nil, grpcError(err)
	}

	if stopSignal == "" {
		stopSignal = img.Spec.Config.StopSignal
	}
	md := store.ContainerMetadata{
		ID:         id,
		Name:       name,
		SandboxID:  sb.Metadata.ID,
		Config:     cfg,
		ImageRef:   img.ID,
		StopSignal: stopSignal,
	}
	if dir, p := sbCfg.GetLogDirectory(), cfg.GetLogPath(); dir != "" && p != "" {
		md.LogPath = filepath.Join(dir, p)
	}
	mdJSON, err := store.MarshalContainerMetadata(md)
	if err != nil {
		return nil, grpcError(err)
	}

	labels := map[string]string{}
	for k, v := range img.Spec.Config.Labels {
		labels[k] = v
	}
	for k, v := range cfg.GetLabels() {
		labels[k] = v
	}
	for k, v := range vols.labels {
		labels[k] = v
	}
	labels[store.KindLabel] = store.KindContainer
	labels[store.SandboxIDLabel] = sb.Metadata.ID
	record := containers.Container{
		ID:     id,
		Labels: labels,
		Image:  imageName,
		Runtime: containers.RuntimeInfo{
			Name:    rt.Type,
			Options: optsAny,
		},
		Spec:        &anypb.Any{TypeUrl: specTypeURL, Value: specJSON},
		Snapshotter: snName,
		SnapshotKey: id,
		Extensions: map[string]*anypb.Any{
			store.ContainerMetadataExtension: {TypeUrl: containerMetadataTypeURL, Value: mdJSON},
		},
		SandboxID: sb.Metadata.ID,
	}
	if _, err := s.deps.Containers.Create(lctx, record); err != nil {
		return nil, grpcError(fmt.Errorf("container record %s: %w", id, err))
	}
	defer func() {
		if retErr != nil {
			if err := s.deps.Containers.Delete(context.WithoutCancel(ctx), id); err != nil && !errdefs.IsNotFound(err) {
				log.G(ctx).WithError(err).WithField("id", id).Warn("removing the record of a failed create")
			}
		}
	}()

	defer func() {
		if retErr != nil {
			os.RemoveAll(s.containerRootDir(id))
			os.RemoveAll(s.containerStateDir(id))
		}
	}()
	cio, err := criio.NewContainerIO(id, filepath.Join(s.containerStateDir(id), "io"), cfg.GetTty(), cfg.GetStdin())
	if err != nil {
		return nil, grpcError(fmt.Errorf("stdio of container %s: %w", id, err))
	}
	defer func() {
		if retErr != nil {
			cio.Close()
		}
	}()

	st := store.ContainerStatus{CreatedAt: time.Now().UnixNano()}
	if res := cfg.GetLinux().GetResources(); res != nil {
		st.Resources = &runtime.ContainerResources{Linux: res}
	}
	c, err := store.NewContainer(md, st, s.containerStatusFile(id))
	if err != nil {
		return nil, grpcError(fmt.Errorf("status of container %s: %w", id, err))
	}
	c.IO = cio
	if err := s.containers.Add(c); err != nil {
		return nil, grpcError(err)
	}
	s.emitContainerEvent(ctx, c, runtime.ContainerEventType_CONTAINER_CREATED_EVENT)
	s.nriPostCreateContainer(ctx, sb, c) // nri-hooks
	return &runtime.CreateContainerResponse{ContainerId: id}, nil
}
