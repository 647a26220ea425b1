package server

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
)

// ContainerStats reports a container's CPU and memory use (while it runs)
// and its writable layer's disk use.
func (s *Service) ContainerStats(ctx context.Context, r *runtime.ContainerStatsRequest) (*runtime.ContainerStatsResponse, error) {
	ctx = withNamespace(ctx)
	c, err := s.containers.Get(r.GetContainerId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("container %q: %w", r.GetContainerId(), err))
	}
	st, err := s.containerStats(ctx, c)
	if err != nil {
		return nil, grpcError(err)
	}
	return &runtime.ContainerStatsResponse{Stats: st}, nil
}

// ListContainerStats reports the stats of the containers matching the
// filter; a container whose stats cannot be had is left out.
func (s *Service) ListContainerStats(ctx context.Context, r *runtime.ListContainerStatsRequest) (*runtime.ListContainerStatsResponse, error) {
	ctx = withNamespace(ctx)
	f := r.GetFilter()
	var out []*runtime.ContainerStats
	for _, c := range s.matchContainers(containerFilter{id: f.GetId(), sandboxID: f.GetPodSandboxId(), labels: f.GetLabelSelector()}) {
		st, err := s.containerStats(ctx, c)
		if err != nil {
			log.G(ctx).WithError(err).WithField("id", c.Metadata.ID).Debug("CRI: container stats")
			continue
		}
		out = append(out, st)
	}
	return &runtime.ListContainerStatsResponse{Stats: out}, nil
}

func (s *Service) containerStats(ctx context.Context, c *store.Container) (*runtime.ContainerStats, error) {
	id := c.Metadata.ID
	out := &runtime.ContainerStats{
		Attributes: &runtime.ContainerAttributes{
			Id:          id,
			Metadata:    c.Metadata.Config.GetMetadata(),
			Labels:      c.Metadata.Config.GetLabels(),
			Annotations: c.Metadata.Config.GetAnnotations(),
		},
	}
	if layer, err := s.writableLayerUsage(ctx, id); err == nil {
		out.WritableLayer = layer
	} else if !errdefs.IsNotFound(err) {
		log.G(ctx).WithError(err).WithField("id", id).Debug("CRI: writable layer usage")
	}
	if c.Status().State() != runtime.ContainerState_CONTAINER_RUNNING {
		return out, nil
	}
	task, err := s.deps.Tasks.Get(ctx, id)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return out, nil
		}
		return nil, fmt.Errorf("task of container %s: %w", id, err)
	}
	metrics, err := task.Stats(ctx)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return out, nil
		}
		return nil, fmt.Errorf("stats of container %s: %w", id, err)
	}
	if err := fillCgroupStats(out, metrics, time.Now()); err != nil {
		return nil, fmt.Errorf("stats of container %s: %w", id, err)
	}
	if cpu := out.Cpu; cpu != nil {
		// The usage rate between two stats calls, as the kubelet reads it.
		if n, ok := containerCPUSamples.nanoCores(id, cpu.GetUsageCoreNanoSeconds().GetValue(), time.Unix(0, cpu.GetTimestamp())); ok {
			cpu.UsageNanoCores = &runtime.UInt64Value{Value: n}
		}
	}
	return out, nil
}

// containerCPUSamples are the containers' last CPU samples (the sandbox
// part's sampler; container ids are random, so services in one process do
// not mix theirs up).
var containerCPUSamples cpuSampler

// writableLayerUsage is the disk use of the container's snapshot.
func (s *Service) writableLayerUsage(ctx context.Context, id string) (*runtime.FilesystemUsage, error) {
	record, err := s.deps.Containers.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.snapshotUsage(ctx, record)
}

// snapshotUsage is the disk use of a container record's snapshot.
func (s *Service) snapshotUsage(ctx context.Context, record containers.Container) (*runtime.FilesystemUsage, error) {
	sn, ok := s.deps.Snapshotters[record.Snapshotter]
	if !ok || record.SnapshotKey == "" {
		return nil, fmt.Errorf("container %s has no snapshot: %w", record.ID, errdefs.ErrNotFound)
	}
	u, err := sn.Usage(ctx, record.SnapshotKey)
	if err != nil {
		return nil, err
	}
	return &runtime.FilesystemUsage{
		Timestamp: time.Now().UnixNano(),
		// The snapshotter's directory, as containerd reports it (and as
		// ImageFsInfo names the image filesystem).
		FsId:       &runtime.FilesystemIdentifier{Mountpoint: filepath.Join(filepath.Dir(s.config.RootDir), "io.containerd.snapshotter.v1."+record.Snapshotter)},
		UsedBytes:  &runtime.UInt64Value{Value: uint64(u.Size)},
		InodesUsed: &runtime.UInt64Value{Value: uint64(u.Inodes)},
	}, nil
}

// memoryUnlimited: cgroup v1 reports no limit as a page-rounded maximum.
const memoryUnlimited = 1 << 62

// fillCgroupStats decodes the shim's cgroup metrics (v1 or v2, by the
// Any's type) into CPU and memory usage.
func fillCgroupStats(out *runtime.ContainerStats, a *anypb.Any, now time.Time) error {
	ts := now.UnixNano()
	m1, m2, err := decodeCgroupMetrics(a)
	if err != nil {
		return err
	}
	switch {
	case m1 != nil:
		m := m1
		if cpu := m.GetCPU().GetUsage(); cpu != nil {
			out.Cpu = &runtime.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtime.UInt64Value{Value: cpu.GetTotal()}}
		}
		if mem := m.GetMemory(); mem != nil {
			usage := mem.GetUsage().GetUsage()
			ws := workingSet(usage, mem.GetTotalInactiveFile())
			mu := &runtime.MemoryUsage{
				Timestamp:       ts,
				WorkingSetBytes: &runtime.UInt64Value{Value: ws},
				UsageBytes:      &runtime.UInt64Value{Value: usage},
				RssBytes:        &runtime.UInt64Value{Value: mem.GetTotalRSS()},
				PageFaults:      &runtime.UInt64Value{Value: mem.GetTotalPgFault()},
				MajorPageFaults: &runtime.UInt64Value{Value: mem.GetTotalPgMajFault()},
			}
			if limit := mem.GetUsage().GetLimit(); limit > 0 && limit < memoryUnlimited && limit >= ws {
				mu.AvailableBytes = &runtime.UInt64Value{Value: limit - ws}
			}
			out.Memory = mu
		}
	case m2 != nil:
		m := m2
		if cpu := m.GetCPU(); cpu != nil {
			out.Cpu = &runtime.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtime.UInt64Value{Value: cpu.GetUsageUsec() * 1000}}
		}
		if mem := m.GetMemory(); mem != nil {
			ws := workingSet(mem.GetUsage(), mem.GetInactiveFile())
			mu := &runtime.MemoryUsage{
				Timestamp:       ts,
				WorkingSetBytes: &runtime.UInt64Value{Value: ws},
				UsageBytes:      &runtime.UInt64Value{Value: mem.GetUsage()},
				RssBytes:        &runtime.UInt64Value{Value: mem.GetAnon()},
				PageFaults:      &runtime.UInt64Value{Value: mem.GetPgfault()},
				MajorPageFaults: &runtime.UInt64Value{Value: mem.GetPgmajfault()},
			}
			if limit := mem.GetUsageLimit(); limit > 0 && limit < memoryUnlimited && limit >= ws {
				mu.AvailableBytes = &runtime.UInt64Value{Value: limit - ws}
			}
			out.Memory = mu
		}
	}
	return nil
}

// decodeCgroupMetrics decodes the shim's cgroup metrics: one of the two
// is set, by the Any's type (cgroup v1 or v2).
func decodeCgroupMetrics(a *anypb.Any) (*v1.Metrics, *v2.Metrics, error) {
	name := a.GetTypeUrl()
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	switch name {
	case string(proto.MessageName(&v1.Metrics{})):
		var m v1.Metrics
		if err := proto.Unmarshal(a.GetValue(), &m); err != nil {
			return nil, nil, fmt.Errorf("decoding cgroup v1 metrics: %w", err)
		}
		return &m, nil, nil
	case string(proto.MessageName(&v2.Metrics{})):
		var m v2.Metrics
		if err := proto.Unmarshal(a.GetValue(), &m); err != nil {
			return nil, nil, fmt.Errorf("decoding cgroup v2 metrics: %w", err)
		}
		return nil, &m, nil
	}
	return nil, nil, fmt.Errorf("unknown metrics type %q: %w", a.GetTypeUrl(), errdefs.ErrNotImplemented)
}

// workingSet is the memory the kubelet evicts by: usage less the inactive
// page cache, which the kernel can reclaim at once.
func workingSet(usage, inactiveFile uint64) uint64 {
	if inactiveFile > usage {
		return 0
	}
	return usage - inactiveFile
}
