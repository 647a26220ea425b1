package server

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
)

// PodSandboxStats reports a ready pod's resource use: CPU and memory of
// its cgroup, its network interfaces, its containers'.
func (s *Service) PodSandboxStats(ctx context.Context, r *runtime.PodSandboxStatsRequest) (*runtime.PodSandboxStatsResponse, error) {
	ctx = withNamespace(ctx)
	sb, err := s.sandboxes.Get(r.GetPodSandboxId())
	if err != nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("sandbox %q: %w", r.GetPodSandboxId(), err))
	}
	st, err := s.podSandboxStats(ctx, sb)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &runtime.PodSandboxStatsResponse{Stats: st}, nil
}

// ListPodSandboxStats reports the ready pods matching the filter; a pod
// whose stats cannot be read (it stopped meanwhile) is left out.
func (s *Service) ListPodSandboxStats(ctx context.Context, r *runtime.ListPodSandboxStatsRequest) (*runtime.ListPodSandboxStatsResponse, error) {
	ctx = withNamespace(ctx)
	resp := &runtime.ListPodSandboxStatsResponse{}
	for _, sb := range s.filterSandboxes(r.GetFilter().GetId(), r.GetFilter().GetLabelSelector()) {
		if sb.Status().State != store.SandboxReady {
			continue
		}
		st, err := s.podSandboxStats(ctx, sb)
		if err != nil {
			log.G(ctx).WithError(err).WithField("sandbox", sb.Metadata.ID).Debug("pod stats")
			continue
		}
		resp.Stats = append(resp.Stats, st)
	}
	return resp, nil
}

func (s *Service) podSandboxStats(ctx context.Context, sb *store.Sandbox) (*runtime.PodSandboxStats, error) {
	md := &sb.Metadata
	status := sb.Status()
	if status.State != store.SandboxReady || status.Pid == 0 {
		return nil, fmt.Errorf("sandbox %s is not ready: %w", md.ID, errdefs.ErrUnavailable)
	}
	now := time.Now()
	u, err := podCgroupUsage(status.Pid, md.Config.GetLinux().GetCgroupParent() != "")
	if err != nil {
		return nil, fmt.Errorf("cgroup stats of sandbox %s: %w", md.ID, err)
	}
	ts := now.UnixNano()
	cpu := &runtime.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtime.UInt64Value{Value: u.cpuNanos}}
	if nc, ok := podCPUSamples.nanoCores(md.ID, u.cpuNanos, now); ok {
		cpu.UsageNanoCores = &runtime.UInt64Value{Value: nc}
	}
	ws := u.memUsage
	if u.inactiveFile < ws {
		ws -= u.inactiveFile
	} else {
		ws = 0
	}
	mem := &runtime.MemoryUsage{
		Timestamp:       ts,
		WorkingSetBytes: &runtime.UInt64Value{Value: ws},
		UsageBytes:      &runtime.UInt64Value{Value: u.memUsage},
		RssBytes:        &runtime.UInt64Value{Value: u.rss},
		PageFaults:      &runtime.UInt64Value{Value: u.pgFault},
		MajorPageFaults: &runtime.UInt64Value{Value: u.pgMajFault},
	}
	// A limit the kernel shows as (near) 2^63 is no limit.
	if u.memLimit != 0 && u.memLimit < 1<<62 && u.memLimit > ws {
		mem.AvailableBytes = &runtime.UInt64Value{Value: u.memLimit - ws}
	}
	out := &runtime.PodSandboxStats{
		Attributes: &runtime.PodSandboxAttributes{
			Id:          md.ID,
			Metadata:    md.Config.GetMetadata(),
			Labels:      md.Config.GetLabels(),
			Annotations: md.Config.GetAnnotations(),
		},
		Linux: &runtime.LinuxPodSandboxStats{
			Cpu:     cpu,
			Memory:  mem,
			Process: &runtime.ProcessUsage{Timestamp: ts, ProcessCount: &runtime.UInt64Value{Value: u.pids}},
		},
	}
	if md.NetNSPath != "" {
		ifaces, err := netDevStats(fmt.Sprintf("/proc/%d/net/dev", status.Pid))
		if err != nil {
			return nil, fmt.Errorf("network stats of sandbox %s: %w", md.ID, err)
		}
		nu := &runtime.NetworkUsage{Timestamp: ts}
		for _, i := range ifaces {
			nu.Interfaces = append(nu.Interfaces, i)
			if i.Name == "eth0" {
				nu.DefaultInterface = i
			}
		}
		if nu.DefaultInterface == nil && len(nu.Interfaces) > 0 {
			nu.DefaultInterface = nu.Interfaces[0]
		}
		out.Linux.Network = nu
	}
	cs, err := s.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{Filter: &runtime.ContainerStatsFilter{PodSandboxId: md.ID}})
	if err == nil {
		out.Linux.Containers = cs.GetStats()
	} else {
		log.G(ctx).WithError(err).WithField("sandbox", md.ID).Debug("container stats of a pod")
	}
	return out, nil
}

// cgroupUsage is what pod stats need of a cgroup, whichever version.
type cgroupUsage struct {
	cpuNanos                         uint64
	memUsage, memLimit, inactiveFile uint64
	rss, pgFault, pgMajFault, pids   uint64
}

// podCgroupUsage reads the pod's cgroup: the parent of the pause
// container's when the pod has a cgroup parent (the pause container's is
// <parent>/<id>, or a scope under the parent's slice with systemd), else
// the pause container's own.
func podCgroupUsage(pausePid uint32, hasParent bool) (cgroupUsage, error) {
	var u cgroupUsage
	if unifiedCgroups() {
		return cgroup2Usage(pausePid, hasParent)
	}
	paths, err := cgroup1.ParseCgroupFile(fmt.Sprintf("/proc/%d/cgroup", pausePid))
	if err != nil {
		return u, err
	}
	p, ok := paths["memory"]
	if !ok {
		return u, fmt.Errorf("pause process %d has no memory cgroup", pausePid)
	}
	if hasParent {
		p = path.Dir(p)
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(p))
	if err != nil {
		return u, fmt.Errorf("cgroup %s: %w", p, err)
	}
	st, err := cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return u, err
	}
	u.cpuNanos = st.GetCPU().GetUsage().GetTotal()
	mem := st.GetMemory()
	u.memUsage, u.memLimit = mem.GetUsage().GetUsage(), mem.GetUsage().GetLimit()
	u.inactiveFile, u.rss = mem.GetTotalInactiveFile(), mem.GetTotalRSS()
	u.pgFault, u.pgMajFault = mem.GetTotalPgFault(), mem.GetTotalPgMajFault()
	u.pids = st.GetPids().GetCurrent()
	return u, nil
}

// netDevCounters are an interface's counters from /proc/<pid>/net/dev.
type netDevCounters struct {
	name                                    string
	rxBytes, rxPackets, rxErrors, rxDropped uint64
	txBytes, txPackets, txErrors, txDropped uint64
}

// readNetDev reads a network namespace's interfaces from a
// /proc/<pid>/net/dev file (the namespace of <pid>), but lo.
func readNetDev(file string) ([]netDevCounters, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []netDevCounters
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, counters, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue // the two header lines
		}
		name = strings.TrimSpace(name)
		fields := strings.Fields(counters)
		if name == "lo" || len(fields) < 16 {
			continue
		}
		n := func(i int) uint64 {
			v, _ := strconv.ParseUint(fields[i], 10, 64)
			return v
		}
		// Receive: bytes packets errs drop fifo frame compressed
		// multicast; then transmit: bytes packets errs drop ...
		out = append(out, netDevCounters{
			name:    name,
			rxBytes: n(0), rxPackets: n(1), rxErrors: n(2), rxDropped: n(3),
			txBytes: n(8), txPackets: n(9), txErrors: n(10), txDropped: n(11),
		})
	}
	return out, sc.Err()
}

// netDevStats is readNetDev's interfaces as the CRI's pod stats give them.
func netDevStats(file string) ([]*runtime.NetworkInterfaceUsage, error) {
	ifaces, err := readNetDev(file)
	if err != nil {
		return nil, err
	}
	out := make([]*runtime.NetworkInterfaceUsage, 0, len(ifaces))
	for _, i := range ifaces {
		out = append(out, &runtime.NetworkInterfaceUsage{
			Name:     i.name,
			RxBytes:  &runtime.UInt64Value{Value: i.rxBytes},
			RxErrors: &runtime.UInt64Value{Value: i.rxErrors},
			TxBytes:  &runtime.UInt64Value{Value: i.txBytes},
			TxErrors: &runtime.UInt64Value{Value: i.txErrors},
		})
	}
	return out, nil
}

// podCPUSamples are the pods' last CPU samples (pod ids are random, so
// services in one process do not mix theirs up).
var podCPUSamples cpuSampler

// cpuSampler keeps each pod's last CPU sample, to turn cumulative usage
// into a rate (nano cores) as containerd does between two stats calls.
type cpuSampler struct {
	mu   sync.Mutex
	last map[string]cpuSample
}

type cpuSample struct {
	nanos uint64
	at    time.Time
}

// nanoCores records the sample and returns the rate since the previous
// one, if there was one.
func (c *cpuSampler) nanoCores(id string, nanos uint64, at time.Time) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[string]cpuSample{}
	}
	prev, ok := c.last[id]
	c.last[id] = cpuSample{nanos, at}
	if !ok || !at.After(prev.at) || nanos < prev.nanos {
		return 0, false
	}
	return uint64(float64(nanos-prev.nanos) / at.Sub(prev.at).Seconds()), true
}

func (c *cpuSampler) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.last, id)
}

// unifiedCgroups is whether the host runs cgroup v2 only.
func unifiedCgroups() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// cgroup2Usage reads cgroup v2's interface files by hand: a few flat
// files, where cgroups/v3's cgroup2 package would bring in eBPF and D-Bus
// libraries (the shim reads them alike).
func cgroup2Usage(pausePid uint32, hasParent bool) (cgroupUsage, error) {
	var u cgroupUsage
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pausePid))
	if err != nil {
		return u, err
	}
	dir := ""
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			dir = path.Join("/sys/fs/cgroup", path.Clean("/"+p))
		}
	}
	if dir == "" {
		return u, fmt.Errorf("pause process %d has no cgroup v2", pausePid)
	}
	if hasParent {
		dir = path.Dir(dir)
	}
	cpu, err := readKV(path.Join(dir, "cpu.stat"))
	if err != nil {
		return u, err
	}
	mem, err := readKV(path.Join(dir, "memory.stat"))
	if err != nil {
		return u, err
	}
	u.cpuNanos = cpu["usage_usec"] * 1000
	u.inactiveFile, u.rss, u.pgFault, u.pgMajFault = mem["inactive_file"], mem["anon"], mem["pgfault"], mem["pgmajfault"]
	u.memUsage, _ = readUint(path.Join(dir, "memory.current"))
	u.memLimit, _ = readUint(path.Join(dir, "memory.max"))
	u.pids, _ = readUint(path.Join(dir, "pids.current"))
	return u, nil
}

// readKV reads a file of "key value" lines, such as memory.stat.
func readKV(file string) (map[string]uint64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	kv := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
				kv[k] = n
			}
		}
	}
	return kv, nil
}

// readUint reads a file of one number; "max" reads as 0 (no limit).
func readUint(file string) (uint64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, nil
	}
	return strconv.ParseUint(s, 10, 64)
}
