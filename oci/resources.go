package oci

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/llitfkitfk/containerd/containers"
)

// WithMemoryLimit limits the container's memory to limit bytes.
func WithMemoryLimit(limit uint64) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setMemory(s)
		l := int64(limit)
		s.Linux.Resources.Memory.Limit = &l
		return nil
	}
}

// WithMemorySwap limits the container's memory plus swap to swap bytes.
func WithMemorySwap(swap int64) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setMemory(s)
		s.Linux.Resources.Memory.Swap = &swap
		return nil
	}
}

// WithPidsLimit limits the number of the container's processes.
func WithPidsLimit(limit int64) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setResources(s)
		s.Linux.Resources.Pids = &specs.LinuxPids{Limit: &limit}
		return nil
	}
}

// WithBlockIO sets the container's block IO limits.
func WithBlockIO(blockio *specs.LinuxBlockIO) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setResources(s)
		s.Linux.Resources.BlockIO = blockio
		return nil
	}
}

// WithCPUShares sets the container's relative CPU weight.
func WithCPUShares(shares uint64) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setCPU(s)
		s.Linux.Resources.CPU.Shares = &shares
		return nil
	}
}

// WithCPUCFS sets the container's CPU quota: quota microseconds each
// period microseconds (-1: unlimited).
func WithCPUCFS(quota int64, period uint64) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setCPU(s)
		s.Linux.Resources.CPU.Quota = &quota
		s.Linux.Resources.CPU.Period = &period
		return nil
	}
}

// WithCPUQuota sets the container's CPU quota in microseconds a period,
// leaving the period as set (the runtime's default, 100ms, if not).
func WithCPUQuota(quota int64) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setCPU(s)
		s.Linux.Resources.CPU.Quota = &quota
		return nil
	}
}

// WithCPUBurst sets the container's CPU burst, in microseconds.
func WithCPUBurst(burst uint64) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setCPU(s)
		s.Linux.Resources.CPU.Burst = &burst
		return nil
	}
}

// WithCPUs sets the CPUs the container may run on ("0-2,4").
func WithCPUs(cpus string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setCPU(s)
		s.Linux.Resources.CPU.Cpus = cpus
		return nil
	}
}

// WithCPUsMems sets the memory nodes the container may use ("0-1").
func WithCPUsMems(mems string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setCPU(s)
		s.Linux.Resources.CPU.Mems = mems
		return nil
	}
}

// WithCPURT sets the container's realtime scheduling runtime and period.
func WithCPURT(runtime int64, period uint64) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setCPU(s)
		s.Linux.Resources.CPU.RealtimeRuntime = &runtime
		s.Linux.Resources.CPU.RealtimePeriod = &period
		return nil
	}
}

// WithRlimit sets a resource limit of the process, replacing one of the
// same type.
func WithRlimit(rlimit *specs.POSIXRlimit) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setProcess(s)
		for i := range s.Process.Rlimits {
			if s.Process.Rlimits[i].Type == rlimit.Type {
				s.Process.Rlimits[i] = *rlimit
				return nil
			}
		}
		s.Process.Rlimits = append(s.Process.Rlimits, *rlimit)
		return nil
	}
}

// WithDevShmSize sets the size of /dev/shm, in KiB.
func WithDevShmSize(kb int64) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		for i := range s.Mounts {
			m := &s.Mounts[i]
			if m.Destination != "/dev/shm" {
				continue
			}
			kept := []string{}
			for _, o := range m.Options {
				if !strings.HasPrefix(o, "size=") {
					kept = append(kept, o)
				}
			}
			m.Options = append(kept, fmt.Sprintf("size=%dk", kb))
			return nil
		}
		return fmt.Errorf("no /dev/shm mount to set the size of")
	}
}

// WithRdt sets the container's Intel RDT class and schemas.
func WithRdt(closID, l3CacheSchema, memBwSchema string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setLinux(s)
		s.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: closID, L3CacheSchema: l3CacheSchema, MemBwSchema: memBwSchema}
		return nil
	}
}

// knownCaps are the capabilities by number, as the kernel numbers them.
var knownCaps = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_DAC_READ_SEARCH",
	"CAP_FOWNER",
	"CAP_FSETID",
	"CAP_KILL",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST",
	"CAP_NET_ADMIN",
	"CAP_NET_RAW",
	"CAP_IPC_LOCK",
	"CAP_IPC_OWNER",
	"CAP_SYS_MODULE",
	"CAP_SYS_RAWIO",
	"CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE",
	"CAP_SYS_PACCT",
	"CAP_SYS_ADMIN",
	"CAP_SYS_BOOT",
	"CAP_SYS_NICE",
	"CAP_SYS_RESOURCE",
	"CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG",
	"CAP_MKNOD",
	"CAP_LEASE",
	"CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL",
	"CAP_SETFCAP",
	"CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN",
	"CAP_SYSLOG",
	"CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND",
	"CAP_AUDIT_READ",
	"CAP_PERFMON",
	"CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// KnownCapabilities lists every capability this package knows by name.
func KnownCapabilities() []string { return append([]string(nil), knownCaps...) }

// CurrentCapabilities lists the effective capabilities of this process
// (from /proc/self/status), those it can give a container.
func CurrentCapabilities() ([]string, error) {
	p, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, fmt.Errorf("read capabilities: %w", err)
	}
	return capsFromStatus(string(p))
}

func capsFromStatus(status string) ([]string, error) {
	for line := range strings.SplitSeq(status, "\n") {
		v, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		bits, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("parse CapEff %q: %w", strings.TrimSpace(v), err)
		}
		var caps []string
		for i, name := range knownCaps {
			if bits&(1<<i) != 0 {
				caps = append(caps, name)
			}
		}
		return caps, nil
	}
	return nil, fmt.Errorf("no CapEff in /proc/self/status")
}

// WithCapabilities sets the process's bounding, effective and permitted
// capabilities to caps (and keeps of its inheritable ones only those in
// caps).
func WithCapabilities(caps []string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setCapabilities(s)
		c := s.Process.Capabilities
		c.Bounding = append([]string(nil), caps...)
		c.Effective = append([]string(nil), caps...)
		c.Permitted = append([]string(nil), caps...)
		c.Inheritable = filterCaps(c.Inheritable, func(x string) bool { return slices.Contains(caps, x) })
		return nil
	}
}

// WithAllCurrentCapabilities gives the process every capability this
// process has.
func WithAllCurrentCapabilities(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
	caps, err := CurrentCapabilities()
	if err != nil {
		return err
	}
	return WithCapabilities(caps)(ctx, client, c, s)
}

// WithAllKnownCapabilities gives the process every capability known.
func WithAllKnownCapabilities(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
	return WithCapabilities(knownCaps)(ctx, client, c, s)
}

// WithAddedCapabilities adds caps to the bounding, effective and
// permitted sets.
func WithAddedCapabilities(caps []string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setCapabilities(s)
		c := s.Process.Capabilities
		for _, set := range []*[]string{&c.Bounding, &c.Effective, &c.Permitted} {
			for _, x := range caps {
				if !slices.Contains(*set, x) {
					*set = append(*set, x)
				}
			}
		}
		return nil
	}
}

// WithDroppedCapabilities removes caps from every set but the ambient
// one.
func WithDroppedCapabilities(caps []string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setCapabilities(s)
		c := s.Process.Capabilities
		keep := func(x string) bool { return !slices.Contains(caps, x) }
		c.Bounding = filterCaps(c.Bounding, keep)
		c.Effective = filterCaps(c.Effective, keep)
		c.Permitted = filterCaps(c.Permitted, keep)
		c.Inheritable = filterCaps(c.Inheritable, keep)
		return nil
	}
}

// WithAmbientCapabilities sets the inheritable and ambient capabilities
// (for a non-root process to keep capabilities).
func WithAmbientCapabilities(caps []string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setCapabilities(s)
		s.Process.Capabilities.Inheritable = caps
		s.Process.Capabilities.Ambient = caps
		return nil
	}
}

func filterCaps(caps []string, keep func(string) bool) []string {
	var out []string
	for _, c := range caps {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}
