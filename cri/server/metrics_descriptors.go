package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The kubelet's CRI metrics (ListMetricDescriptors, ListPodSandboxMetrics)
// carry cAdvisor's names and label keys, so that the kubelet can serve its
// /metrics/cadvisor endpoint from the runtime alone.

// metricDef is one metric: its descriptor and whether it only grows.
type metricDef struct {
	name, help string
	keys       []string
	kind       runtime.MetricType
}

// The label keys: every metric is a container's (for a pod's own metrics,
// container and image are empty and id is the sandbox's), some add their
// own dimension after those.
var (
	baseLabelKeys    = []string{"pod", "namespace", "container", "id", "image"}
	networkLabelKeys = withKeys(baseLabelKeys, "interface")
	diskLabelKeys    = withKeys(baseLabelKeys, "device")
)

func withKeys(base []string, more ...string) []string {
	return append(append([]string(nil), base...), more...)
}

const (
	counter = runtime.MetricType_COUNTER
	gauge   = runtime.MetricType_GAUGE
)

var (
	metricCPUUsage         = &metricDef{"container_cpu_usage_seconds_total", "Cumulative CPU time consumed in seconds.", baseLabelKeys, counter}
	metricCPUUser          = &metricDef{"container_cpu_user_seconds_total", "Cumulative user CPU time consumed in seconds.", baseLabelKeys, counter}
	metricCPUSystem        = &metricDef{"container_cpu_system_seconds_total", "Cumulative system CPU time consumed in seconds.", baseLabelKeys, counter}
	metricCFSPeriods       = &metricDef{"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", baseLabelKeys, counter}
	metricCFSThrottled     = &metricDef{"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", baseLabelKeys, counter}
	metricCFSThrottledTime = &metricDef{"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", baseLabelKeys, counter}
	metricMemCache         = &metricDef{"container_memory_cache", "Number of bytes of page cache memory.", baseLabelKeys, gauge}
	metricMemRSS           = &metricDef{"container_memory_rss", "Size of RSS in bytes: anonymous memory and swap cache.", baseLabelKeys, gauge}
	metricMemKernel        = &metricDef{"container_memory_kernel_usage", "Size of kernel memory allocated to the container in bytes.", baseLabelKeys, gauge}
	metricMemMappedFile    = &metricDef{"container_memory_mapped_file", "Size of memory mapped files in bytes.", baseLabelKeys, gauge}
	metricMemSwap          = &metricDef{"container_memory_swap", "Container swap usage in bytes.", baseLabelKeys, gauge}
	metricMemFailcnt       = &metricDef{"container_memory_failcnt", "Number of times memory usage hit the limit (cgroup v1 only; 0 on v2).", baseLabelKeys, counter}
	metricMemUsage         = &metricDef{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", baseLabelKeys, gauge}
	metricMemMaxUsage      = &metricDef{"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.", baseLabelKeys, gauge}
	metricMemWorkingSet    = &metricDef{"container_memory_working_set_bytes", "Current working set in bytes: usage less inactive page cache.", baseLabelKeys, gauge}
	metricMemActiveFile    = &metricDef{"container_memory_total_active_file_bytes", "Active page cache in bytes.", baseLabelKeys, gauge}
	metricMemInactiveFile  = &metricDef{"container_memory_total_inactive_file_bytes", "Inactive page cache in bytes.", baseLabelKeys, gauge}
	metricMemFailures      = &metricDef{"container_memory_failures_total", "Cumulative count of memory allocation failures (page faults).", withKeys(baseLabelKeys, "failure_type", "scope"), counter}
	metricOOMEvents        = &metricDef{"container_oom_events_total", "Count of out of memory kills in the container.", baseLabelKeys, counter}
	metricNetRxBytes       = &metricDef{"container_network_receive_bytes_total", "Cumulative count of bytes received.", networkLabelKeys, counter}
	metricNetRxPackets     = &metricDef{"container_network_receive_packets_total", "Cumulative count of packets received.", networkLabelKeys, counter}
	metricNetRxDropped     = &metricDef{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", networkLabelKeys, counter}
	metricNetRxErrors      = &metricDef{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", networkLabelKeys, counter}
	metricNetTxBytes       = &metricDef{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", networkLabelKeys, counter}
	metricNetTxPackets     = &metricDef{"container_network_transmit_packets_total", "Cumulative count of packets transmitted.", networkLabelKeys, counter}
	metricNetTxDropped     = &metricDef{"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", networkLabelKeys, counter}
	metricNetTxErrors      = &metricDef{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", networkLabelKeys, counter}
	metricFsInodesFree     = &metricDef{"container_fs_inodes_free", "Number of available inodes.", diskLabelKeys, gauge}
	metricFsInodesTotal    = &metricDef{"container_fs_inodes_total", "Number of inodes.", diskLabelKeys, gauge}
	metricFsLimit          = &metricDef{"container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", diskLabelKeys, gauge}
	metricFsUsage          = &metricDef{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", diskLabelKeys, gauge}
	metricFsReadsBytes     = &metricDef{"container_fs_reads_bytes_total", "Cumulative count of bytes read.", diskLabelKeys, counter}
	metricFsReads          = &metricDef{"container_fs_reads_total", "Cumulative count of reads completed.", diskLabelKeys, counter}
	metricFsWritesBytes    = &metricDef{"container_fs_writes_bytes_total", "Cumulative count of bytes written.", diskLabelKeys, counter}
	metricFsWrites         = &metricDef{"container_fs_writes_total", "Cumulative count of writes completed.", diskLabelKeys, counter}
	metricBlkioDeviceUsage = &metricDef{"container_blkio_device_usage_total", "Blkio device bytes usage.", withKeys(diskLabelKeys, "major", "minor", "operation"), counter}
	metricProcesses        = &metricDef{"container_processes", "Number of processes running inside the container.", baseLabelKeys, gauge}
	metricFileDescriptors  = &metricDef{"container_file_descriptors", "Number of open file descriptors for the container.", baseLabelKeys, gauge}
	metricSockets          = &metricDef{"container_sockets", "Number of open sockets for the container.", baseLabelKeys, gauge}
	metricThreads          = &metricDef{"container_threads", "Number of threads running inside the container.", baseLabelKeys, gauge}
	metricThreadsMax       = &metricDef{"container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero.", baseLabelKeys, gauge}
	metricLastSeen         = &metricDef{"container_last_seen", "Last time a container was seen by the exporter.", baseLabelKeys, gauge}
	metricStartTime        = &metricDef{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", baseLabelKeys, gauge}
	metricSpecCPUPeriod    = &metricDef{"container_spec_cpu_period", "CPU period of the container.", baseLabelKeys, gauge}
	metricSpecCPUShares    = &metricDef{"container_spec_cpu_shares", "CPU share of the container.", baseLabelKeys, gauge}
	metricSpecMemLimit     = &metricDef{"container_spec_memory_limit_bytes", "Memory limit for the container.", baseLabelKeys, gauge}
	metricSpecMemSwapLimit = &metricDef{"container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", baseLabelKeys, gauge}
)

// metricDefs are the metrics ListPodSandboxMetrics gives. Each is given
// for every running container (network: for every pod with its own
// network namespace), but the disk I/O ones, which only a block device
// with I/O accounting has; a descriptor must not be listed without its
// values (the kubelet and critest check that).
var metricDefs = []*metricDef{
	metricCPUUsage, metricCPUUser, metricCPUSystem, metricCFSPeriods, metricCFSThrottled, metricCFSThrottledTime,
	metricMemCache, metricMemRSS, metricMemKernel, metricMemMappedFile, metricMemSwap, metricMemFailcnt,
	metricMemUsage, metricMemMaxUsage, metricMemWorkingSet, metricMemActiveFile, metricMemInactiveFile,
	metricMemFailures, metricOOMEvents,
	metricNetRxBytes, metricNetRxPackets, metricNetRxDropped, metricNetRxErrors,
	metricNetTxBytes, metricNetTxPackets, metricNetTxDropped, metricNetTxErrors,
	metricFsInodesFree, metricFsInodesTotal, metricFsLimit, metricFsUsage,
	metricFsReadsBytes, metricFsReads, metricFsWritesBytes, metricFsWrites, metricBlkioDeviceUsage,
	metricProcesses, metricFileDescriptors, metricSockets, metricThreads, metricThreadsMax,
	metricLastSeen, metricStartTime,
	metricSpecCPUPeriod, metricSpecCPUShares, metricSpecMemLimit, metricSpecMemSwapLimit,
}

// ListMetricDescriptors describes the metrics ListPodSandboxMetrics gives.
func (s *Service) ListMetricDescriptors(ctx context.Context, r *runtime.ListMetricDescriptorsRequest) (*runtime.ListMetricDescriptorsResponse, error) {
	out := make([]*runtime.MetricDescriptor, 0, len(metricDefs))
	for _, d := range metricDefs {
		// Copies: the response must not share the package's slices.
		out = append(out, &runtime.MetricDescriptor{Name: d.name, Help: d.help, LabelKeys: append([]string(nil), d.keys...)})
	}
	return &runtime.ListMetricDescriptorsResponse{Descriptors: out}, nil
}
