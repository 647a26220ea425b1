package server

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/anypb"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/spec"
	ctrdruntime "github.com/llitfkitfk/containerd/runtime"
	"github.com/llitfkitfk/containerd/snapshots"
)

// critestMetrics are the names critest v1.37.0 expects described and
// given ("runtime should support metrics operations"), but those it knows
// runtimes leave out (hugetlb, pressure, cpu quota, memory reservation,
// ulimits).
var critestMetrics = []string{
	"container_blkio_device_usage_total", "container_cpu_cfs_periods_total",
	"container_cpu_cfs_throttled_periods_total", "container_cpu_cfs_throttled_seconds_total",
	"container_cpu_system_seconds_total", "container_cpu_usage_seconds_total", "container_cpu_user_seconds_total",
	"container_file_descriptors", "container_fs_inodes_free", "container_fs_inodes_total", "container_fs_limit_bytes",
	"container_fs_reads_bytes_total", "container_fs_reads_total", "container_fs_usage_bytes",
	"container_fs_writes_bytes_total", "container_fs_writes_total", "container_last_seen", "container_memory_cache",
	"container_memory_failcnt", "container_memory_failures_total", "container_memory_kernel_usage",
	"container_memory_mapped_file", "container_memory_max_usage_bytes", "container_memory_rss",
	"container_memory_swap", "container_memory_usage_bytes", "container_memory_working_set_bytes",
	"container_network_receive_bytes_total", "container_network_receive_errors_total",
	"container_network_receive_packets_dropped_total", "container_network_receive_packets_total",
	"container_network_transmit_bytes_total", "container_network_transmit_errors_total",
	"container_network_transmit_packets_dropped_total", "container_network_transmit_packets_total",
	"container_oom_events_total", "container_processes", "container_sockets", "container_spec_cpu_period",
	"container_spec_cpu_shares", "container_spec_memory_limit_bytes", "container_spec_memory_swap_limit_bytes",
	"container_start_time_seconds", "container_threads", "container_threads_max",
}

// diskIOMetrics need block I/O accounting, which not every disk has.
var diskIOMetrics = []string{
	"container_blkio_device_usage_total", "container_fs_reads_bytes_total", "container_fs_reads_total",
	"container_fs_writes_bytes_total", "container_fs_writes_total",
}

func describe(t *testing.T) map[string]*runtime.MetricDescriptor {
	t.Helper()
	resp, err := (&Service{}).ListMetricDescriptors(context.Background(), &runtime.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*runtime.MetricDescriptor{}
	for _, d := range resp.GetDescriptors() {
		if _, dup := out[d.GetName()]; dup {
			t.Errorf("%s described twice", d.GetName())
		}
		out[d.GetName()] = d
	}
	return out
}

func TestListMetricDescriptors(t *testing.T) {
	descs := describe(t)
	for _, name := range critestMetrics {
		if _, ok := descs[name]; !ok {
			t.Errorf("%s is not described", name)
		}
	}
	for name, d := range descs {
		if d.GetHelp() == "" || len(d.GetLabelKeys()) == 0 {
			t.Errorf("%s: help %q, label keys %v", name, d.GetHelp(), d.GetLabelKeys())
		}
		if !slices.Equal(d.GetLabelKeys()[:5], []string{"pod", "namespace", "container", "id", "image"}) {
			t.Errorf("%s: label keys %v do not start with the base ones", name, d.GetLabelKeys())
		}
	}
	if k := descs["container_memory_failures_total"].GetLabelKeys(); !slices.Equal(k[5:], []string{"failure_type", "scope"}) {
		t.Errorf("memory failures keys %v", k)
	}
	if k := descs["container_network_receive_bytes_total"].GetLabelKeys(); !slices.Equal(k[5:], []string{"interface"}) {
		t.Errorf("network keys %v", k)
	}
	// A response is the caller's: changing it must not change the next.
	descs["container_fs_usage_bytes"].LabelKeys[0] = "changed"
	if describe(t)["container_fs_usage_bytes"].GetLabelKeys()[0] != "pod" {
		t.Error("descriptors share their label keys between responses")
	}
}

// checkLabels fails for a metric that is not described or whose label
// values are not as many as its descriptor's keys.
func checkLabels(t *testing.T, descs map[string]*runtime.MetricDescriptor, ms []*runtime.Metric) {
	t.Helper()
	for _, m := range ms {
		d, ok := descs[m.GetName()]
		if !ok {
			t.Errorf("%s is given but not described", m.GetName())
			continue
		}
		if len(m.GetLabelValues()) != len(d.GetLabelKeys()) {
			t.Errorf("%s: label values %v for keys %v", m.GetName(), m.GetLabelValues(), d.GetLabelKeys())
		}
	}
}

// values indexes metrics by name and their labels past the base ones.
func values(ms []*runtime.Metric) map[string]uint64 {
	out := map[string]uint64{}
	for _, m := range ms {
		key := m.GetName()
		for _, l := range m.GetLabelValues()[5:] {
			key += "/" + l
		}
		out[key] = m.GetValue().GetValue()
	}
	return out
}

func wantValues(t *testing.T, got, want map[string]uint64) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %d (given: %v), want %d", k, g, ok, v)
		}
	}
}

const gib = 1 << 30

func TestCgroupV1Metrics(t *testing.T) {
	set := metricSet{ts: 1, labels: []string{"p", "ns", "c", "id", "img"}}
	set.addCgroupV1(&v1.Metrics{
		CPU: &v1.CPUStat{
			Usage:      &v1.CPUUsage{Total: 5_500_000_000, User: 3_000_000_000, Kernel: 2_000_000_000},
			Throttling: &v1.Throttle{Periods: 10, ThrottledPeriods: 4, ThrottledTime: 2_000_000_000},
		},
		Memory: &v1.MemoryStat{
			Usage:    &v1.MemoryEntry{Usage: 3 * gib, Max: 4 * gib, Failcnt: 7, Limit: 8 * gib},
			Swap:     &v1.MemoryEntry{Usage: 3*gib + 100},
			Kernel:   &v1.MemoryEntry{Usage: 300},
			TotalRSS: gib, TotalCache: 2 * gib, TotalMappedFile: 50,
			TotalActiveFile: 60, TotalInactiveFile: gib,
			PgFault: 11, PgMajFault: 12, TotalPgFault: 21, TotalPgMajFault: 22,
		},
		MemoryOomControl: &v1.MemoryOomControl{OomKill: 2},
		Pids:             &v1.PidsStat{Current: 9, Limit: 100},
		Blkio: &v1.BlkIOStat{
			IoServiceBytesRecursive: []*v1.BlkIOEntry{{Op: "Read", Major: 8, Minor: 0, Value: 4096}, {Op: "Write", Major: 8, Device: "/dev/sda", Value: 8192}},
			IoServicedRecursive:     []*v1.BlkIOEntry{{Op: "Read", Major: 8, Value: 1}, {Op: "Write", Major: 8, Device: "/dev/sda", Value: 2}},
		},
	})
	checkLabels(t, describe(t), set.out)
	wantValues(t, values(set.out), map[string]uint64{
		"container_cpu_usage_seconds_total":                     5,
		"container_cpu_user_seconds_total":                      3,
		"container_cpu_system_seconds_total":                    2,
		"container_cpu_cfs_periods_total":                       10,
		"container_cpu_cfs_throttled_periods_total":             4,
		"container_cpu_cfs_throttled_seconds_total":             2,
		"container_memory_usage_bytes":                          3 * gib,
		"container_memory_max_usage_bytes":                      4 * gib,
		"container_memory_failcnt":                              7,
		"container_memory_working_set_bytes":                    2 * gib,
		"container_memory_rss":                                  gib,
		"container_memory_cache":                                2 * gib,
		"container_memory_mapped_file":                          50,
		"container_memory_total_active_file_bytes":              60,
		"container_memory_total_inactive_file_bytes":            gib,
		"container_memory_kernel_usage":                         300,
		"container_memory_swap":                                 100, // memsw less memory
		"container_memory_failures_total/pgfault/container":     11,
		"container_memory_failures_total/pgmajfault/container":  12,
		"container_memory_failures_total/pgfault/hierarchy":     21,
		"container_memory_failures_total/pgmajfault/hierarchy":  22,
		"container_oom_events_total":                            2,
		"container_threads":                                     9,
		"container_threads_max":                                 100,
		"container_blkio_device_usage_total/8:0/8/0/Read":       4096,
		"container_blkio_device_usage_total//dev/sda/8/0/Write": 8192,
		"container_fs_reads_bytes_total/8:0":                    4096,
		"container_fs_writes_bytes_total//dev/sda":              8192,
		"container_fs_reads_total/8:0":                          1,
		"container_fs_writes_total//dev/sda":                    2,
	})

	// Without swap accounting memsw is absent: no swap, not a wrap.
	set = metricSet{labels: []string{"p", "ns", "c", "id", "img"}}
	set.addCgroupV1(&v1.Metrics{Memory: &v1.MemoryStat{Usage: &v1.MemoryEntry{Usage: gib}}})
	wantValues(t, values(set.out), map[string]uint64{"container_memory_swap": 0, "container_oom_events_total": 0})
}

func TestCgroupV2Metrics(t *testing.T) {
	set := metricSet{ts: 1, labels: []string{"p", "ns", "c", "id", "img"}}
	set.addCgroupV2(&v2.Metrics{
		CPU: &v2.CPUStat{UsageUsec: 7_000_000, UserUsec: 4_000_000, SystemUsec: 3_000_000, NrPeriods: 5, NrThrottled: 1, ThrottledUsec: 1_000_000},
		Memory: &v2.MemoryStat{
			Usage: 3 * gib, MaxUsage: 4 * gib, UsageLimit: 8 * gib, InactiveFile: gib, ActiveFile: 60,
			Anon: gib, File: 2 * gib, FileMapped: 50, KernelStack: 1, Slab: 2, Sock: 4, SwapUsage: 100,
			Pgfault: 11, Pgmajfault: 12,
		},
		MemoryEvents: &v2.MemoryEvents{OomKill: 3},
		Pids:         &v2.PidsStat{Current: 9, Limit: 100},
		Io:           &v2.IOStat{Usage: []*v2.IOEntry{{Major: 259, Minor: 1, Rbytes: 10, Wbytes: 20, Rios: 1, Wios: 2}}},
	})
	checkLabels(t, describe(t), set.out)
	wantValues(t, values(set.out), map[string]uint64{
		"container_cpu_usage_seconds_total":                    7,
		"container_cpu_user_seconds_total":                     4,
		"container_cpu_system_seconds_total":                   3,
		"container_cpu_cfs_periods_total":                      5,
		"container_cpu_cfs_throttled_periods_total":            1,
		"container_cpu_cfs_throttled_seconds_total":            1,
		"container_memory_usage_bytes":                         3 * gib,
		"container_memory_max_usage_bytes":                     4 * gib,
		"container_memory_failcnt":                             0,
		"container_memory_working_set_bytes":                   2 * gib,
		"container_memory_rss":                                 gib,
		"container_memory_cache":                               2 * gib,
		"container_memory_mapped_file":                         50,
		"container_memory_kernel_usage":                        7,
		"container_memory_swap":                                100,
		"container_memory_failures_total/pgfault/container":    11,
		"container_memory_failures_total/pgmajfault/hierarchy": 12,
		"container_oom_events_total":                           3,
		"container_threads":                                    9,
		"container_threads_max":                                100,
		"container_fs_reads_bytes_total/259:1":                 10,
		"container_fs_writes_bytes_total/259:1":                20,
		"container_fs_reads_total/259:1":                       1,
		"container_fs_writes_total/259:1":                      2,
		"container_blkio_device_usage_total/259:1/259/1/Write": 20,
	})
}

func TestNetworkAndSpecMetrics(t *testing.T) {
	set := metricSet{labels: []string{"p", "ns", "", "sandbox", ""}}
	addNetworkMetrics(&set, []netDevCounters{{name: "eth0", rxBytes: 1, rxPackets: 2, rxErrors: 3, rxDropped: 4, txBytes: 5, txPackets: 6, txErrors: 7, txDropped: 8}})
	period, shares := uint64(100000), uint64(512)
	limit, swap, unlimited := int64(64<<20), int64(128<<20), int64(-1)
	addSpecMetrics(&set, &specs.Linux{Resources: &specs.LinuxResources{
		CPU:    &specs.LinuxCPU{Period: &period, Shares: &shares},
		Memory: &specs.LinuxMemory{Limit: &limit, Swap: &swap},
	}})
	checkLabels(t, describe(t), set.out)
	wantValues(t, values(set.out), map[string]uint64{
		"container_network_receive_bytes_total/eth0":            1,
		"container_network_receive_packets_total/eth0":          2,
		"container_network_receive_errors_total/eth0":           3,
		"container_network_receive_packets_dropped_total/eth0":  4,
		"container_network_transmit_bytes_total/eth0":           5,
		"container_network_transmit_packets_total/eth0":         6,
		"container_network_transmit_errors_total/eth0":          7,
		"container_network_transmit_packets_dropped_total/eth0": 8,
		"container_spec_cpu_period":                             period,
		"container_spec_cpu_shares":                             shares,
		"container_spec_memory_limit_bytes":                     64 << 20,
		"container_spec_memory_swap_limit_bytes":                128 << 20,
	})

	// Unset and unlimited resources have no metric.
	set = metricSet{labels: []string{"p", "ns", "c", "id", "img"}}
	addSpecMetrics(&set, nil)
	addSpecMetrics(&set, &specs.Linux{Resources: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &unlimited}}})
	if len(set.out) != 0 {
		t.Errorf("metrics of no resources: %v", set.out)
	}
}

func TestCountFDs(t *testing.T) {
	// A fake /proc: pid 1 has a file and a socket, pid 2 is gone.
	proc := t.TempDir()
	fd := filepath.Join(proc, "1", "fd")
	if err := os.MkdirAll(fd, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"0": "/dev/null", "1": "socket:[1234]", "2": "pipe:[5]"} {
		if err := os.Symlink(target, filepath.Join(fd, name)); err != nil {
			t.Fatal(err)
		}
	}
	if fds, sockets := countFDs(proc, []uint32{1, 2}); fds != 3 || sockets != 1 {
		t.Errorf("fds %d sockets %d, want 3 and 1", fds, sockets)
	}

	// This process, with one more socket open than before.
	self := uint32(os.Getpid())
	_, before := countFDs("/proc", []uint32{self})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, after := countFDs("/proc", []uint32{self}); after != before+1 {
		t.Errorf("sockets %d after listening, %d before", after, before)
	}
}

// The env's fake tasks and snapshotter answer stats, processes and usage
// (the sandbox tests' fakes do not need them): cgroup v1 stats, the test
// process itself (whose fds are real), a fixed usage.
func (t *fakeTask) Stats(ctx context.Context) (*anypb.Any, error) {
	return anypb.New(&v1.Metrics{
		CPU:    &v1.CPUStat{Usage: &v1.CPUUsage{Total: 2_000_000_000}, Throttling: &v1.Throttle{}},
		Memory: &v1.MemoryStat{Usage: &v1.MemoryEntry{Usage: gib}, Swap: &v1.MemoryEntry{}, Kernel: &v1.MemoryEntry{}},
		Pids:   &v1.PidsStat{Current: 1},
	})
}

func (t *fakeTask) Pids(ctx context.Context) ([]ctrdruntime.ProcessInfo, error) {
	return []ctrdruntime.ProcessInfo{{Pid: uint32(os.Getpid())}}, nil
}

func (f *fakeSnapshotter) Usage(ctx context.Context, key string) (snapshots.Usage, error) {
	return snapshots.Usage{Size: 4096, Inodes: 3}, nil
}

func TestListPodSandboxMetrics(t *testing.T) {
	e := newCtrEnv(t)
	period, shares := uint64(100000), uint64(1024)
	limit, swap := int64(64<<20), int64(64<<20)
	e.spec = func(ctx context.Context, in spec.ContainerInput) (*specs.Spec, error) {
		return &specs.Spec{Version: "1.0.2", Process: &specs.Process{Args: in.Config.GetCommand()}, Linux: &specs.Linux{
			Resources: &specs.LinuxResources{
				CPU:    &specs.LinuxCPU{Period: &period, Shares: &shares},
				Memory: &specs.LinuxMemory{Limit: &limit, Swap: &swap},
			},
		}}, nil
	}
	// The writable layer's filesystem: the snapshotter's directory.
	if err := os.MkdirAll(filepath.Join(filepath.Dir(e.s.config.RootDir), "io.containerd.snapshotter.v1.overlayfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	running, err := e.create("app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.StartContainer(e.ctx, &runtime.StartContainerRequest{ContainerId: running}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.create("created"); err != nil {
		t.Fatal(err)
	}
	// More pods than run at once, for the race detector.
	for i := range metricsParallelism + 2 {
		if _, err := e.run(hostPod("other"+string(rune('a'+i))), ""); err != nil {
			t.Fatal(err)
		}
	}

	resp, err := e.s.ListPodSandboxMetrics(e.ctx, &runtime.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetPodMetrics()); n != metricsParallelism+3 {
		t.Fatalf("%d pods' metrics, want %d", n, metricsParallelism+3)
	}
	var pod *runtime.PodSandboxMetrics
	for _, p := range resp.GetPodMetrics() {
		if p.GetPodSandboxId() == e.sandbox {
			pod = p
		}
	}
	// Host network: no network metrics; only the running container.
	if pod == nil || len(pod.GetMetrics()) != 0 || len(pod.GetContainerMetrics()) != 1 || pod.GetContainerMetrics()[0].GetContainerId() != running {
		t.Fatalf("pod metrics %v", pod)
	}
	ms := pod.GetContainerMetrics()[0].GetMetrics()
	descs := describe(t)
	checkLabels(t, descs, ms)
	got := values(ms)
	for name := range descs {
		if slices.Contains(diskIOMetrics, name) || slices.Contains(networkMetricNames(), name) {
			continue
		}
		found := false
		for _, m := range ms {
			found = found || m.GetName() == name
		}
		if !found {
			t.Errorf("%s is described but not given", name)
		}
	}
	wantValues(t, got, map[string]uint64{
		"container_cpu_usage_seconds_total":      2,
		"container_processes":                    1,
		"container_fs_usage_bytes//":             4096,
		"container_spec_memory_limit_bytes":      64 << 20,
		"container_spec_memory_swap_limit_bytes": 64 << 20,
		"container_spec_cpu_shares":              1024,
	})
	if got["container_file_descriptors"] == 0 || got["container_fs_limit_bytes//"] == 0 || got["container_start_time_seconds"] == 0 {
		t.Errorf("fds, fs limit or start time missing: %v", got)
	}
	if l := ms[0].GetLabelValues(); !slices.Equal(l, []string{"pod", "default", "app", running, "busybox"}) {
		t.Errorf("labels %v", l)
	}

	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if _, err := e.s.ListPodSandboxMetrics(ctx, &runtime.ListPodSandboxMetricsRequest{}); grpcCode(err) != codes.Canceled {
		t.Errorf("cancelled: %v", err)
	}
}

func networkMetricNames() []string {
	var out []string
	for _, d := range metricDefs {
		if slices.Equal(d.keys, networkLabelKeys) {
			out = append(out, d.name)
		}
	}
	return out
}
