package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
)

// metricsParallelism bounds the pods whose metrics are read at once:
// each costs shim calls and a walk of the containers' writable layers.
const metricsParallelism = 4

// ListPodSandboxMetrics gives the metrics of every ready pod: its network
// and its running containers' cgroup, processes, writable layer and
// resources. A pod or container whose metrics cannot be read (it stopped
// meanwhile) is left out or given in part.
func (s *Service) ListPodSandboxMetrics(ctx context.Context, r *runtime.ListPodSandboxMetricsRequest) (*runtime.ListPodSandboxMetricsResponse, error) {
	ctx = withNamespace(ctx)
	var pods []*store.Sandbox
	for _, sb := range s.sandboxes.List() {
		if sb.Status().State == store.SandboxReady {
			pods = append(pods, sb)
		}
	}
	results := make([]*runtime.PodSandboxMetrics, len(pods))
	var g errgroup.Group
	g.SetLimit(metricsParallelism)
	for i, sb := range pods {
		g.Go(func() error {
			if ctx.Err() == nil {
				results[i] = s.podSandboxMetrics(ctx, sb)
			}
			return nil
		})
	}
	g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	out := &runtime.ListPodSandboxMetricsResponse{}
	for _, m := range results {
		if m != nil {
			out.PodMetrics = append(out.PodMetrics, m)
		}
	}
	return out, nil
}

// podSandboxMetrics reads a pod's metrics; nil if it is gone.
func (s *Service) podSandboxMetrics(ctx context.Context, sb *store.Sandbox) *runtime.PodSandboxMetrics {
	md := &sb.Metadata
	status := sb.Status()
	if status.State != store.SandboxReady || status.Pid == 0 {
		return nil
	}
	pod := md.Config.GetMetadata()
	out := &runtime.PodSandboxMetrics{PodSandboxId: md.ID}
	if md.NetNSPath != "" {
		// The pod's own metrics are its network's, as containerd's: its
		// containers share it. Container and image are empty, the id
		// is the sandbox's.
		ifaces, err := readNetDev(fmt.Sprintf("/proc/%d/net/dev", status.Pid))
		if err != nil {
			log.G(ctx).WithError(err).WithField("sandbox", md.ID).Debug("CRI: pod network metrics")
			return nil
		}
		set := metricSet{ts: time.Now().UnixNano(), labels: []string{pod.GetName(), pod.GetNamespace(), "", md.ID, ""}}
		addNetworkMetrics(&set, ifaces)
		out.Metrics = set.out
	}
	for _, c := range s.matchContainers(containerFilter{sandboxID: md.ID}) {
		if c.Status().State() != runtime.ContainerState_CONTAINER_RUNNING {
			continue
		}
		cm, err := s.containerMetrics(ctx, pod, c)
		if err != nil {
			log.G(ctx).WithError(err).WithField("id", c.Metadata.ID).Debug("CRI: container metrics")
			continue
		}
		out.ContainerMetrics = append(out.ContainerMetrics, cm)
	}
	return out
}

// addNetworkMetrics adds each interface's counters.
func addNetworkMetrics(m *metricSet, ifaces []netDevCounters) {
	for _, i := range ifaces {
		m.add(metricNetRxBytes, i.rxBytes, i.name)
		m.add(metricNetRxPackets, i.rxPackets, i.name)
		m.add(metricNetRxDropped, i.rxDropped, i.name)
		m.add(metricNetRxErrors, i.rxErrors, i.name)
		m.add(metricNetTxBytes, i.txBytes, i.name)
		m.add(metricNetTxPackets, i.txPackets, i.name)
		m.add(metricNetTxDropped, i.txDropped, i.name)
		m.add(metricNetTxErrors, i.txErrors, i.name)
	}
}

// containerMetrics reads a running container's metrics. Its cgroup stats
// are required; the rest (processes, writable layer, spec) is given
// when it can be read.
func (s *Service) containerMetrics(ctx context.Context, pod *runtime.PodSandboxMetadata, c *store.Container) (*runtime.ContainerMetrics, error) {
	id := c.Metadata.ID
	task, err := s.deps.Tasks.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("task of container %s: %w", id, err)
	}
	stats, err := task.Stats(ctx)
	if err != nil {
		return nil, fmt.Errorf("stats of container %s: %w", id, err)
	}
	m1, m2, err := decodeCgroupMetrics(stats)
	if err != nil {
		return nil, fmt.Errorf("stats of container %s: %w", id, err)
	}
	cfg := c.Metadata.Config
	image := cfg.GetImage().GetUserSpecifiedImage()
	if image == "" {
		image = cfg.GetImage().GetImage()
	}
	now := time.Now()
	set := metricSet{ts: now.UnixNano(), labels: []string{pod.GetName(), pod.GetNamespace(), cfg.GetMetadata().GetName(), id, image}}
	set.add(metricLastSeen, uint64(now.Unix()))
	set.add(metricStartTime, uint64(c.Status().StartedAt/int64(time.Second)))
	if m1 != nil {
		set.addCgroupV1(m1)
	} else {
		set.addCgroupV2(m2)
	}

	if procs, err := task.Pids(ctx); err == nil {
		pids := make([]uint32, 0, len(procs))
		for _, p := range procs {
			pids = append(pids, p.Pid)
		}
		fds, sockets := countFDs("/proc", pids)
		set.add(metricProcesses, uint64(len(pids)))
		set.add(metricFileDescriptors, fds)
		set.add(metricSockets, sockets)
	} else {
		log.G(ctx).WithError(err).WithField("id", id).Debug("CRI: container processes")
	}

	record, err := s.deps.Containers.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	if layer, err := s.snapshotUsage(ctx, record); err == nil {
		if err := addFsMetrics(&set, layer); err != nil {
			log.G(ctx).WithError(err).WithField("id", id).Debug("CRI: container filesystem")
		}
	} else {
		log.G(ctx).WithError(err).WithField("id", id).Debug("CRI: writable layer usage")
	}
	var sp specs.Spec
	if err := json.Unmarshal(record.Spec.GetValue(), &sp); err == nil {
		addSpecMetrics(&set, sp.Linux)
	} else {
		log.G(ctx).WithError(err).WithField("id", id).Debug("CRI: container spec")
	}
	return &runtime.ContainerMetrics{ContainerId: id, Metrics: set.out}, nil
}

// fsDevice is the device label of the writable layer's metrics, as
// containerd gives it: the container's root.
const fsDevice = "/"

// addFsMetrics adds the writable layer's usage and the size of the
// filesystem it is on (the snapshotter's directory).
func addFsMetrics(m *metricSet, layer *runtime.FilesystemUsage) error {
	var st unix.Statfs_t
	if err := unix.Statfs(layer.GetFsId().GetMountpoint(), &st); err != nil {
		return fmt.Errorf("statfs %s: %w", layer.GetFsId().GetMountpoint(), err)
	}
	m.add(metricFsUsage, layer.GetUsedBytes().GetValue(), fsDevice)
	m.add(metricFsLimit, st.Blocks*uint64(st.Bsize), fsDevice)
	m.add(metricFsInodesTotal, st.Files, fsDevice)
	m.add(metricFsInodesFree, st.Ffree, fsDevice)
	return nil
}

// addSpecMetrics adds the resources the container's OCI spec sets; what
// it leaves unset has no metric, as in containerd.
func addSpecMetrics(m *metricSet, l *specs.Linux) {
	if l == nil || l.Resources == nil {
		return
	}
	res := l.Resources
	if cpu := res.CPU; cpu != nil {
		if cpu.Period != nil {
			m.add(metricSpecCPUPeriod, *cpu.Period)
		}
		if cpu.Shares != nil {
			m.add(metricSpecCPUShares, *cpu.Shares)
		}
	}
	if mem := res.Memory; mem != nil {
		// Negative is unlimited (-1), which has no sensible uint64.
		if mem.Limit != nil && *mem.Limit >= 0 {
			m.add(metricSpecMemLimit, uint64(*mem.Limit))
		}
		if mem.Swap != nil && *mem.Swap >= 0 {
			m.add(metricSpecMemSwapLimit, uint64(*mem.Swap))
		}
	}
}

// countFDs counts the open file descriptors of processes, and those of
// them that are sockets, from <proc>/<pid>/fd. A process that exits
// meanwhile counts none.
func countFDs(proc string, pids []uint32) (fds, sockets uint64) {
	for _, pid := range pids {
		dir := filepath.Join(proc, strconv.FormatUint(uint64(pid), 10), "fd")
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		fds += uint64(len(entries))
		for _, e := range entries {
			if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(target, "socket:") {
				sockets++
			}
		}
	}
	return fds, sockets
}
