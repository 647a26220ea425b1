package server

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/runtime-tools/generate"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/nri"
)

// This file is the CRI's side of NRI (package nri): it turns the CRI's
// sandboxes and containers into NRI's pods and containers, relays their
// lifecycle to the plugins from the hooks the sandbox and container code
// calls (s.nri*), and carries out what plugins ask of containers. With
// no NRI (Deps.NRI nil, disabled, or failed to start) every hook does
// nothing.

// StartNRI opens the NRI socket with this service as the plugins'
// runtime domain. It is called after Start, once recovered pods and
// containers are known; a failure leaves the CRI running without NRI.
func (s *Service) StartNRI(ctx context.Context) {
	if s.deps.NRI == nil {
		return
	}
	if err := s.deps.NRI.Start(nriDomain{s}); err != nil {
		log.G(ctx).WithError(err).Error("CRI: NRI is not available")
	}
}

// nriBlockSync holds off a connecting NRI plugin's synchronisation while
// a pod or container is made or removed (see nri.NRI.BlockPluginSync).
// Use: defer s.nriBlockSync().Unblock().
func (s *Service) nriBlockSync() *nri.SyncBlock { return s.deps.NRI.BlockPluginSync() }

func (s *Service) nriOn() bool { return s.deps.NRI.Enabled() }

// nriRunPodSandbox is called once the pause container runs and before
// the sandbox is in the store, so that nothing sees the pod before the
// plugins have. An error fails RunPodSandbox (whose undo then removes
// the pod); the plugins are then told the pod is removed.
func (s *Service) nriRunPodSandbox(ctx context.Context, sb *store.Sandbox) error {
	if !s.nriOn() {
		return nil
	}
	pod := s.nriPod(ctx, sb)
	if err := s.deps.NRI.RunPodSandbox(ctx, pod); err != nil {
		if rerr := s.deps.NRI.RemovePodSandbox(context.WithoutCancel(ctx), pod); rerr != nil {
			log.G(ctx).WithError(rerr).WithField("sandbox", sb.Metadata.ID).Warn("NRI: removing a pod whose start failed")
		}
		return fmt.Errorf("NRI: RunPodSandbox of %s: %w", sb.Metadata.ID, err)
	}
	return nil
}

// nriStopPodSandbox is called once a pod's containers and pause
// container have stopped, before its network goes. The containers'
// StopContainer events go out first, in case their exits' are still
// under way. Plugins' errors are logged: a stop must go through.
func (s *Service) nriStopPodSandbox(ctx context.Context, sb *store.Sandbox) {
	if !s.nriOn() {
		return
	}
	pod := s.nriPod(ctx, sb)
	for _, c := range s.sandboxContainers(sb.Metadata.ID) {
		if c.Status().State() == runtime.ContainerState_CONTAINER_EXITED {
			if err := s.deps.NRI.StopContainer(ctx, pod, s.nriContainer(ctx, c, nil)); err != nil {
				log.G(ctx).WithError(err).WithField("container", c.Metadata.ID).Warn("NRI: StopContainer")
			}
		}
	}
	if err := s.deps.NRI.StopPodSandbox(ctx, pod); err != nil {
		log.G(ctx).WithError(err).WithField("sandbox", sb.Metadata.ID).Warn("NRI: StopPodSandbox")
	}
}

// nriRemovePodSandbox is called when a pod's containers are removed,
// before the pod leaves the store.
func (s *Service) nriRemovePodSandbox(ctx context.Context, sb *store.Sandbox) {
	if !s.nriOn() {
		return
	}
	if err := s.deps.NRI.RemovePodSandbox(ctx, s.nriPod(ctx, sb)); err != nil {
		log.G(ctx).WithError(err).WithField("sandbox", sb.Metadata.ID).Warn("NRI: RemovePodSandbox")
	}
}

// nriCreateContainer asks plugins for their adjustment of a container
// whose spec is made and whose record is not: the adjustment is applied
// to sp. An error fails CreateContainer; the plugins are then told the
// container is removed.
func (s *Service) nriCreateContainer(ctx context.Context, sb *store.Sandbox, id string, cfg *runtime.ContainerConfig, sp *specs.Spec) error {
	if !s.nriOn() {
		return nil
	}
	pod := s.nriPod(ctx, sb)
	ctr := nriContainerFromSpec(id, sb.Metadata.ID, cfg, sp)
	ctr.State = api.ContainerState_CONTAINER_CREATED
	adjust, err := s.deps.NRI.CreateContainer(ctx, pod, ctr)
	if err == nil {
		err = applyAdjustment(sp, adjust)
	}
	if err != nil {
		s.nriUndoCreate(ctx, sb, id, cfg, sp)
		return fmt.Errorf("NRI: CreateContainer of %s: %w", id, err)
	}
	return nil
}

// nriCreateFailed tells plugins a container they were asked about was
// not created after all (a later step of CreateContainer failed). Use:
// defer s.nriCreateFailed(ctx, sb, id, cfg, sp, &retErr).
func (s *Service) nriCreateFailed(ctx context.Context, sb *store.Sandbox, id string, cfg *runtime.ContainerConfig, sp *specs.Spec, retErr *error) {
	if *retErr != nil && s.nriOn() {
		s.nriUndoCreate(ctx, sb, id, cfg, sp)
	}
}

func (s *Service) nriUndoCreate(ctx context.Context, sb *store.Sandbox, id string, cfg *runtime.ContainerConfig, sp *specs.Spec) {
	ctr := nriContainerFromSpec(id, sb.Metadata.ID, cfg, sp)
	if err := s.deps.NRI.RemoveContainer(context.WithoutCancel(ctx), s.nriPod(ctx, sb), ctr); err != nil {
		log.G(ctx).WithError(err).WithField("container", id).Warn("NRI: removing a container whose create failed")
	}
}

// nriPostCreateContainer is called once the container is in the store.
func (s *Service) nriPostCreateContainer(ctx context.Context, sb *store.Sandbox, c *store.Container) {
	if !s.nriOn() {
		return
	}
	if err := s.deps.NRI.PostCreateContainer(ctx, s.nriPod(ctx, sb), s.nriContainer(ctx, c, nil)); err != nil {
		log.G(ctx).WithError(err).WithField("container", c.Metadata.ID).Warn("NRI: PostCreateContainer")
	}
}

// nriStartContainer is called before a container's task starts; an error
// fails the start.
func (s *Service) nriStartContainer(ctx context.Context, sb *store.Sandbox, c *store.Container) error {
	if !s.nriOn() {
		return nil
	}
	if err := s.deps.NRI.StartContainer(ctx, s.nriPod(ctx, sb), s.nriContainer(ctx, c, nil)); err != nil {
		return fmt.Errorf("NRI: StartContainer of %s: %w", c.Metadata.ID, err)
	}
	return nil
}

// nriPostStartContainer is called once a container started.
func (s *Service) nriPostStartContainer(ctx context.Context, sb *store.Sandbox, c *store.Container) {
	if !s.nriOn() {
		return
	}
	if err := s.deps.NRI.PostStartContainer(ctx, s.nriPod(ctx, sb), s.nriContainer(ctx, c, nil)); err != nil {
		log.G(ctx).WithError(err).WithField("container", c.Metadata.ID).Warn("NRI: PostStartContainer")
	}
}

// nriUpdateContainer asks plugins about an UpdateContainerResources
// request and returns the resources to set: the request's, as plugins
// adjusted them. It is called before the container's lock is taken.
// Updates that plugins themselves make (nriDomain.UpdateContainer) come
// in with a marked context and are not asked about again.
func (s *Service) nriUpdateContainer(ctx context.Context, c *store.Container, res *runtime.LinuxContainerResources) (*runtime.LinuxContainerResources, error) {
	if !s.nriOn() || res == nil {
		return res, nil
	}
	sb, err := s.sandboxes.Get(c.Metadata.SandboxID)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s of container %s: %w", c.Metadata.SandboxID, c.Metadata.ID, err)
	}
	adjusted, err := s.deps.NRI.UpdateContainer(ctx, s.nriPod(ctx, sb), s.nriContainer(ctx, c, nil), nriResourcesFromCRI(res))
	if err != nil {
		return nil, fmt.Errorf("NRI: UpdateContainer of %s: %w", c.Metadata.ID, err)
	}
	if adjusted == nil {
		return res, nil
	}
	return criResourcesFromNRI(adjusted, res), nil
}

// nriPostUpdateContainer is called once a container's resources changed.
func (s *Service) nriPostUpdateContainer(ctx context.Context, c *store.Container) {
	if !s.nriOn() {
		return
	}
	sb, err := s.sandboxes.Get(c.Metadata.SandboxID)
	if err != nil {
		return
	}
	if err := s.deps.NRI.PostUpdateContainer(ctx, s.nriPod(ctx, sb), s.nriContainer(ctx, c, nil)); err != nil {
		log.G(ctx).WithError(err).WithField("container", c.Metadata.ID).Warn("NRI: PostUpdateContainer")
	}
}

// nriStopContainer tells plugins a container stopped, at most once per
// container: after StopContainer, and (in the background, see
// nriContainerExited) when it exits on its own.
func (s *Service) nriStopContainer(ctx context.Context, c *store.Container) {
	if !s.nriOn() {
		return
	}
	sb, err := s.sandboxes.Get(c.Metadata.SandboxID)
	if err != nil {
		return
	}
	if err := s.deps.NRI.StopContainer(ctx, s.nriPod(ctx, sb), s.nriContainer(ctx, c, nil)); err != nil {
		log.G(ctx).WithError(err).WithField("container", c.Metadata.ID).Warn("NRI: StopContainer")
	}
}

// nriContainerExited is called by the exit handling: the plugins hear
// of the stop in the background, so that the event monitor never waits
// on a plugin (the event lock orders it against the container's other
// events, and the lifecycle tracking sends it once).
func (s *Service) nriContainerExited(ctx context.Context, c *store.Container) {
	if !s.nriOn() {
		return
	}
	go s.nriStopContainer(context.WithoutCancel(ctx), c)
}

// nriRemoveContainer is called before a container leaves the store.
func (s *Service) nriRemoveContainer(ctx context.Context, c *store.Container) {
	if !s.nriOn() {
		return
	}
	var pod *api.PodSandbox
	if sb, err := s.sandboxes.Get(c.Metadata.SandboxID); err == nil {
		pod = s.nriPod(ctx, sb)
	} else {
		pod = &api.PodSandbox{Id: c.Metadata.SandboxID}
	}
	if err := s.deps.NRI.RemoveContainer(ctx, pod, s.nriContainer(ctx, c, nil)); err != nil {
		log.G(ctx).WithError(err).WithField("container", c.Metadata.ID).Warn("NRI: RemoveContainer")
	}
}

func (s *Service) sandboxContainers(id string) []*store.Container {
	var cs []*store.Container
	for _, c := range s.containers.List() {
		if c.Metadata.SandboxID == id {
			cs = append(cs, c)
		}
	}
	return cs
}

// recordSpec is the OCI spec in a container's (or pause container's)
// record; nil if there is none or it does not read.
func (s *Service) recordSpec(ctx context.Context, id string) *specs.Spec {
	rec, err := s.deps.Containers.Get(withNamespace(ctx), id)
	if err != nil || rec.Spec == nil {
		return nil
	}
	var sp specs.Spec
	if err := json.Unmarshal(rec.Spec.GetValue(), &sp); err != nil {
		return nil
	}
	return &sp
}

// nriPod is a sandbox as NRI sees it: the kubelet's metadata, labels and
// annotations, and from the pause container's spec its cgroups and
// namespaces.
func (s *Service) nriPod(ctx context.Context, sb *store.Sandbox) *api.PodSandbox {
	return nriPodFromSpec(sb, s.recordSpec(ctx, sb.Metadata.ID))
}

func nriPodFromSpec(sb *store.Sandbox, sp *specs.Spec) *api.PodSandbox {
	md, cfg := sb.Metadata, sb.Metadata.Config
	pod := &api.PodSandbox{
		Id:             md.ID,
		Name:           cfg.GetMetadata().GetName(),
		Uid:            cfg.GetMetadata().GetUid(),
		Namespace:      cfg.GetMetadata().GetNamespace(),
		Labels:         copyMap(cfg.GetLabels()),
		Annotations:    copyMap(cfg.GetAnnotations()),
		RuntimeHandler: md.RuntimeHandler,
		Pid:            sb.Status().Pid,
		Linux: &api.LinuxPodSandbox{
			CgroupParent: cfg.GetLinux().GetCgroupParent(),
			PodOverhead:  nriResourcesFromCRI(cfg.GetLinux().GetOverhead()),
			PodResources: nriResourcesFromCRI(cfg.GetLinux().GetResources()),
		},
	}
	if md.IP != "" {
		pod.Ips = append([]string{md.IP}, md.AdditionalIPs...)
	}
	if sp != nil && sp.Linux != nil {
		pod.Linux.CgroupsPath = sp.Linux.CgroupsPath
		pod.Linux.Namespaces = api.FromOCILinuxNamespaces(sp.Linux.Namespaces)
		pod.Linux.Resources = api.FromOCILinuxResources(sp.Linux.Resources, nil)
	}
	return pod
}

// nriContainer is a container in the store as NRI sees it, with its
// spec from sp or else its record.
func (s *Service) nriContainer(ctx context.Context, c *store.Container, sp *specs.Spec) *api.Container {
	if sp == nil {
		sp = s.recordSpec(ctx, c.Metadata.ID)
	}
	ctr := nriContainerFromSpec(c.Metadata.ID, c.Metadata.SandboxID, c.Metadata.Config, sp)
	st := c.Status()
	ctr.State = nriState(st)
	ctr.Pid = st.Pid
	ctr.CreatedAt, ctr.StartedAt, ctr.FinishedAt = st.CreatedAt, st.StartedAt, st.FinishedAt
	ctr.ExitCode, ctr.StatusReason, ctr.StatusMessage = st.ExitCode, st.Reason, st.Message
	return ctr
}

func nriState(st store.ContainerStatus) api.ContainerState {
	switch st.State() {
	case runtime.ContainerState_CONTAINER_CREATED:
		return api.ContainerState_CONTAINER_CREATED
	case runtime.ContainerState_CONTAINER_RUNNING:
		return api.ContainerState_CONTAINER_RUNNING
	case runtime.ContainerState_CONTAINER_EXITED:
		return api.ContainerState_CONTAINER_STOPPED
	}
	return api.ContainerState_CONTAINER_UNKNOWN
}

// nriContainerFromSpec is a container as NRI sees it from its CRI config
// and its OCI spec (nil: only what the config says).
func nriContainerFromSpec(id, sandboxID string, cfg *runtime.ContainerConfig, sp *specs.Spec) *api.Container {
	ctr := &api.Container{
		Id:           id,
		PodSandboxId: sandboxID,
		Name:         cfg.GetMetadata().GetName(),
		Labels:       copyMap(cfg.GetLabels()),
		Annotations:  copyMap(cfg.GetAnnotations()),
		Args:         append(append([]string(nil), cfg.GetCommand()...), cfg.GetArgs()...),
		Linux:        &api.LinuxContainer{},
	}
	if img := cfg.GetImage().GetImage(); img != "" {
		ctr.Image = &api.Image{Name: img}
	}
	for _, kv := range cfg.GetEnvs() {
		ctr.Env = append(ctr.Env, kv.GetKey()+"="+string(kv.GetValue()))
	}
	if sp == nil {
		return ctr
	}
	// The spec's annotations are the config's and the runtime's own.
	if len(sp.Annotations) > 0 {
		ctr.Annotations = copyMap(sp.Annotations)
	}
	ctr.Mounts = api.FromOCIMounts(sp.Mounts)
	ctr.Hooks = api.FromOCIHooks(sp.Hooks)
	if p := sp.Process; p != nil {
		ctr.Args = append([]string(nil), p.Args...)
		ctr.Env = append([]string(nil), p.Env...)
		for _, r := range p.Rlimits {
			ctr.Rlimits = append(ctr.Rlimits, &api.POSIXRlimit{Type: r.Type, Hard: r.Hard, Soft: r.Soft})
		}
		ctr.User = &api.User{Uid: p.User.UID, Gid: p.User.GID, AdditionalGids: append([]uint32(nil), p.User.AdditionalGids...)}
		if p.OOMScoreAdj != nil {
			ctr.Linux.OomScoreAdj = api.Int(*p.OOMScoreAdj)
		}
		ctr.Linux.IoPriority = api.FromOCILinuxIOPriority(p.IOPriority)
		ctr.Linux.Scheduler = api.FromOCILinuxScheduler(p.Scheduler)
	}
	if l := sp.Linux; l != nil {
		ctr.Linux.Namespaces = api.FromOCILinuxNamespaces(l.Namespaces)
		ctr.Linux.Devices = api.FromOCILinuxDevices(l.Devices)
		ctr.Linux.Resources = api.FromOCILinuxResources(l.Resources, sp.Annotations)
		ctr.Linux.CgroupsPath = l.CgroupsPath
		if l.Seccomp != nil { // NRI's converter does not take nil
			ctr.Linux.SeccompPolicy = api.FromOCILinuxSeccomp(l.Seccomp)
		}
		ctr.Linux.Sysctl = copyMap(l.Sysctl)
		ctr.Linux.NetDevices = api.FromOCILinuxNetDevices(l.NetDevices)
	}
	return ctr
}

// applyAdjustment applies plugins' adjustment to a container's spec with
// NRI's own adjustment code, over our spec editor.
func applyAdjustment(sp *specs.Spec, adjust *api.ContainerAdjustment) error {
	if adjust == nil {
		return nil
	}
	return generate.SpecGenerator(specEditor{sp}).Adjust(adjust)
}

// nriResourcesFromCRI is a CRI container's resources in NRI's terms
// (nil for nil). Zero values are what the CRI leaves unset.
func nriResourcesFromCRI(r *runtime.LinuxContainerResources) *api.LinuxResources {
	if r == nil {
		return nil
	}
	res := &api.LinuxResources{
		Cpu: &api.LinuxCPU{
			Cpus: r.GetCpusetCpus(),
			Mems: r.GetCpusetMems(),
		},
		Memory:  &api.LinuxMemory{},
		Unified: copyMap(r.GetUnified()),
	}
	if v := r.GetCpuShares(); v != 0 {
		res.Cpu.Shares = api.UInt64(uint64(v))
	}
	if v := r.GetCpuQuota(); v != 0 {
		res.Cpu.Quota = api.Int64(v)
	}
	if v := r.GetCpuPeriod(); v != 0 {
		res.Cpu.Period = api.UInt64(uint64(v))
	}
	if v := r.GetMemoryLimitInBytes(); v != 0 {
		res.Memory.Limit = api.Int64(v)
	}
	if v := r.GetMemorySwapLimitInBytes(); v != 0 {
		res.Memory.Swap = api.Int64(v)
	}
	for _, h := range r.GetHugepageLimits() {
		res.HugepageLimits = append(res.HugepageLimits, &api.HugepageLimit{PageSize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	return res
}

// criResourcesFromNRI is NRI's resources as a CRI update; what NRI
// leaves unset keeps the value in base.
func criResourcesFromNRI(r *api.LinuxResources, base *runtime.LinuxContainerResources) *runtime.LinuxContainerResources {
	out := &runtime.LinuxContainerResources{}
	if base != nil {
		out.CpuPeriod, out.CpuQuota, out.CpuShares = base.CpuPeriod, base.CpuQuota, base.CpuShares
		out.CpusetCpus, out.CpusetMems = base.CpusetCpus, base.CpusetMems
		out.MemoryLimitInBytes, out.MemorySwapLimitInBytes = base.MemoryLimitInBytes, base.MemorySwapLimitInBytes
		out.OomScoreAdj = base.OomScoreAdj
		out.HugepageLimits = base.HugepageLimits
		out.Unified = copyMap(base.Unified)
	}
	if c := r.GetCpu(); c != nil {
		if v := c.GetShares(); v != nil {
			out.CpuShares = int64(v.GetValue())
		}
		if v := c.GetQuota(); v != nil {
			out.CpuQuota = v.GetValue()
		}
		if v := c.GetPeriod(); v != nil {
			out.CpuPeriod = int64(v.GetValue())
		}
		if c.GetCpus() != "" {
			out.CpusetCpus = c.GetCpus()
		}
		if c.GetMems() != "" {
			out.CpusetMems = c.GetMems()
		}
	}
	if m := r.GetMemory(); m != nil {
		if v := m.GetLimit(); v != nil {
			out.MemoryLimitInBytes = v.GetValue()
		}
		if v := m.GetSwap(); v != nil {
			out.MemorySwapLimitInBytes = v.GetValue()
		}
	}
	if hs := r.GetHugepageLimits(); len(hs) > 0 {
		out.HugepageLimits = nil
		for _, h := range hs {
			out.HugepageLimits = append(out.HugepageLimits, &runtime.HugepageLimit{PageSize: h.GetPageSize(), Limit: h.GetLimit()})
		}
	}
	for k, v := range r.GetUnified() {
		if out.Unified == nil {
			out.Unified = map[string]string{}
		}
		out.Unified[k] = v
	}
	return out
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// nriDomain is the service as NRI plugins' runtime: it lists pods and
// containers for a plugin's Synchronize and carries out plugins'
// updates and evictions.
type nriDomain struct{ s *Service }

func (d nriDomain) ListPodSandboxes() []*api.PodSandbox {
	ctx := withNamespace(context.Background())
	var pods []*api.PodSandbox
	for _, sb := range d.s.sandboxes.List() {
		pods = append(pods, d.s.nriPod(ctx, sb))
	}
	return pods
}

func (d nriDomain) ListContainers() []*api.Container {
	ctx := withNamespace(context.Background())
	var ctrs []*api.Container
	for _, c := range d.s.containers.List() {
		ctrs = append(ctrs, d.s.nriContainer(ctx, c, nil))
	}
	return ctrs
}

// UpdateContainer sets a plugin's resources for a container: into its
// spec, and into its task if it runs. It goes around
// UpdateContainerResources, whose NRI hook would ask the plugins again.
func (d nriDomain) UpdateContainer(ctx context.Context, u *api.ContainerUpdate) error {
	s := d.s
	ctx = withNamespace(ctx)
	c, err := s.containers.Get(u.GetContainerId())
	if err != nil {
		return fmt.Errorf("container %q: %w", u.GetContainerId(), err)
	}
	res := u.GetLinux().GetResources()
	if res == nil {
		return nil
	}
	id := c.Metadata.ID
	return c.UpdateStatus(func(st store.ContainerStatus) (store.ContainerStatus, error) {
		state := st.State()
		if state != runtime.ContainerState_CONTAINER_RUNNING && state != runtime.ContainerState_CONTAINER_CREATED {
			return st, fmt.Errorf("container %s is %s: %w", id, stateName(state), errdefs.ErrFailedPrecondition)
		}
		record, err := s.deps.Containers.Get(ctx, id)
		if err != nil {
			return st, fmt.Errorf("record of container %s: %w", id, err)
		}
		var sp specs.Spec
		if err := json.Unmarshal(record.Spec.GetValue(), &sp); err != nil {
			return st, fmt.Errorf("spec of container %s: %w", id, err)
		}
		g := generate.SpecGenerator(specEditor{&sp})
		if err := g.AdjustResources(res); err != nil {
			return st, fmt.Errorf("container %s: %w", id, err)
		}
		specJSON, err := json.Marshal(&sp)
		if err != nil {
			return st, err
		}
		record.Spec = &anypb.Any{TypeUrl: specTypeURL, Value: specJSON}
		if _, err := s.deps.Containers.Update(ctx, record, "spec"); err != nil {
			return st, fmt.Errorf("updating the spec of container %s: %w", id, err)
		}
		if state == runtime.ContainerState_CONTAINER_RUNNING && sp.Linux != nil && sp.Linux.Resources != nil {
			resJSON, err := json.Marshal(sp.Linux.Resources)
			if err != nil {
				return st, err
			}
			if err := s.updateTask(ctx, id, &anypb.Any{TypeUrl: resourcesTypeURL, Value: resJSON}, nil); err != nil {
				return st, err
			}
		}
		return st, nil
	})
}

// EvictContainer stops a container a plugin wants gone, at once.
func (d nriDomain) EvictContainer(ctx context.Context, id, reason string) error {
	c, err := d.s.containers.Get(id)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return err
	}
	log.G(ctx).WithField("container", id).WithField("reason", reason).Info("NRI: evicting a container")
	if err := d.s.stopContainer(withNamespace(ctx), c, 0); err != nil {
		return err
	}
	d.s.nriStopContainer(ctx, c)
	return nil
}

var _ nri.Domain = nriDomain{}
