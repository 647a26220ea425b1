package server

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// metricSet collects one container's (or pod's) metrics, all with the
// same base label values and time.
type metricSet struct {
	ts     int64
	labels []string
	out    []*runtime.Metric
}

// add records a value; extra are the values of the labels the metric
// adds after the base ones.
func (m *metricSet) add(d *metricDef, v uint64, extra ...string) {
	labels := m.labels
	if len(extra) > 0 {
		labels = withKeys(m.labels, extra...)
	}
	m.out = append(m.out, &runtime.Metric{
		Name:        d.name,
		Timestamp:   m.ts,
		MetricType:  d.kind,
		LabelValues: labels,
		Value:       &runtime.UInt64Value{Value: v},
	})
}

// seconds turns nanoseconds into whole seconds: metric values are
// integers, as in containerd.
func seconds(ns uint64) uint64 { return ns / uint64(time.Second) }

// addCgroupV1 adds the CPU, memory, block I/O and pids metrics of a
// cgroup v1 stats (as the shim reads them), with cAdvisor's meanings:
// memory figures are hierarchical (the total_* of memory.stat).
func (m *metricSet) addCgroupV1(s *v1.Metrics) {
	if cpu := s.GetCPU(); cpu != nil {
		u := cpu.GetUsage()
		m.add(metricCPUUsage, seconds(u.GetTotal()))
		m.add(metricCPUUser, seconds(u.GetUser()))
		m.add(metricCPUSystem, seconds(u.GetKernel()))
		t := cpu.GetThrottling()
		m.add(metricCFSPeriods, t.GetPeriods())
		m.add(metricCFSThrottled, t.GetThrottledPeriods())
		m.add(metricCFSThrottledTime, seconds(t.GetThrottledTime()))
	}
	if mem := s.GetMemory(); mem != nil {
		usage := mem.GetUsage().GetUsage()
		m.add(metricMemUsage, usage)
		m.add(metricMemMaxUsage, mem.GetUsage().GetMax())
		m.add(metricMemFailcnt, mem.GetUsage().GetFailcnt())
		m.add(metricMemWorkingSet, workingSet(usage, mem.GetTotalInactiveFile()))
		m.add(metricMemRSS, mem.GetTotalRSS())
		m.add(metricMemCache, mem.GetTotalCache())
		m.add(metricMemMappedFile, mem.GetTotalMappedFile())
		m.add(metricMemActiveFile, mem.GetTotalActiveFile())
		m.add(metricMemInactiveFile, mem.GetTotalInactiveFile())
		m.add(metricMemKernel, mem.GetKernel().GetUsage())
		// memsw counts memory and swap together, so swap is the
		// difference (0 without swap accounting).
		var swap uint64
		if sw := mem.GetSwap().GetUsage(); sw > usage {
			swap = sw - usage
		}
		m.add(metricMemSwap, swap)
		m.add(metricMemFailures, mem.GetPgFault(), "pgfault", "container")
		m.add(metricMemFailures, mem.GetPgMajFault(), "pgmajfault", "container")
		m.add(metricMemFailures, mem.GetTotalPgFault(), "pgfault", "hierarchy")
		m.add(metricMemFailures, mem.GetTotalPgMajFault(), "pgmajfault", "hierarchy")
		m.add(metricOOMEvents, s.GetMemoryOomControl().GetOomKill())
	}
	if p := s.GetPids(); p != nil {
		// pids.current counts tasks, that is threads.
		m.add(metricThreads, p.GetCurrent())
		m.add(metricThreadsMax, p.GetLimit())
	}
	blk := s.GetBlkio()
	for _, e := range blk.GetIoServiceBytesRecursive() {
		dev := blkioDevice(e.GetDevice(), e.GetMajor(), e.GetMinor())
		m.add(metricBlkioDeviceUsage, e.GetValue(), dev, strconv.FormatUint(e.GetMajor(), 10), strconv.FormatUint(e.GetMinor(), 10), e.GetOp())
		switch strings.ToLower(e.GetOp()) {
		case "read":
			m.add(metricFsReadsBytes, e.GetValue(), dev)
		case "write":
			m.add(metricFsWritesBytes, e.GetValue(), dev)
		}
	}
	for _, e := range blk.GetIoServicedRecursive() {
		dev := blkioDevice(e.GetDevice(), e.GetMajor(), e.GetMinor())
		switch strings.ToLower(e.GetOp()) {
		case "read":
			m.add(metricFsReads, e.GetValue(), dev)
		case "write":
			m.add(metricFsWrites, e.GetValue(), dev)
		}
	}
}

// addCgroupV2 is addCgroupV1 for cgroup v2, whose memory.stat is
// hierarchical already and which has no failcnt.
func (m *metricSet) addCgroupV2(s *v2.Metrics) {
	if cpu := s.GetCPU(); cpu != nil {
		m.add(metricCPUUsage, seconds(cpu.GetUsageUsec()*1000))
		m.add(metricCPUUser, seconds(cpu.GetUserUsec()*1000))
		m.add(metricCPUSystem, seconds(cpu.GetSystemUsec()*1000))
		m.add(metricCFSPeriods, cpu.GetNrPeriods())
		m.add(metricCFSThrottled, cpu.GetNrThrottled())
		m.add(metricCFSThrottledTime, seconds(cpu.GetThrottledUsec()*1000))
	}
	if mem := s.GetMemory(); mem != nil {
		m.add(metricMemUsage, mem.GetUsage())
		m.add(metricMemMaxUsage, mem.GetMaxUsage()) // memory.peak; 0 on kernels without it
		m.add(metricMemFailcnt, 0)
		m.add(metricMemWorkingSet, workingSet(mem.GetUsage(), mem.GetInactiveFile()))
		m.add(metricMemRSS, mem.GetAnon())
		m.add(metricMemCache, mem.GetFile())
		m.add(metricMemMappedFile, mem.GetFileMapped())
		m.add(metricMemActiveFile, mem.GetActiveFile())
		m.add(metricMemInactiveFile, mem.GetInactiveFile())
		// cAdvisor's kernel usage on v2: stacks, slab and socket buffers.
		m.add(metricMemKernel, mem.GetKernelStack()+mem.GetSlab()+mem.GetSock())
		m.add(metricMemSwap, mem.GetSwapUsage())
		for _, scope := range []string{"container", "hierarchy"} {
			m.add(metricMemFailures, mem.GetPgfault(), "pgfault", scope)
			m.add(metricMemFailures, mem.GetPgmajfault(), "pgmajfault", scope)
		}
		m.add(metricOOMEvents, s.GetMemoryEvents().GetOomKill())
	}
	if p := s.GetPids(); p != nil {
		m.add(metricThreads, p.GetCurrent())
		m.add(metricThreadsMax, p.GetLimit())
	}
	for _, e := range s.GetIo().GetUsage() {
		dev := blkioDevice("", e.GetMajor(), e.GetMinor())
		m.add(metricFsReadsBytes, e.GetRbytes(), dev)
		m.add(metricFsWritesBytes, e.GetWbytes(), dev)
		m.add(metricFsReads, e.GetRios(), dev)
		m.add(metricFsWrites, e.GetWios(), dev)
		major, minor := strconv.FormatUint(e.GetMajor(), 10), strconv.FormatUint(e.GetMinor(), 10)
		m.add(metricBlkioDeviceUsage, e.GetRbytes(), dev, major, minor, "Read")
		m.add(metricBlkioDeviceUsage, e.GetWbytes(), dev, major, minor, "Write")
	}
}

// blkioDevice names a block device: its name when the stats have it,
// else major:minor.
func blkioDevice(name string, major, minor uint64) string {
	if name != "" {
		return name
	}
	return fmt.Sprintf("%d:%d", major, minor)
}
