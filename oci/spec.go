// Package oci builds OCI runtime specs for containers: a default Linux
// spec like containerd's, changed by options (the image's config, the
// user's args, env and mounts, namespaces shared with the host...).
package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/snapshots"
)

// Spec is an OCI runtime spec.
type Spec = specs.Spec

// Client is what spec options need of a client: the snapshotter that
// holds the container's root filesystem, to read /etc/passwd and
// /etc/group from it.
type Client interface {
	SnapshotService(snapshotterName string) snapshots.Snapshotter
}

// Image is what spec options need of an image: its config.
type Image interface {
	Config(ctx context.Context) (ocispec.Descriptor, error)
	ContentStore() content.Store
}

// SpecOpts changes a spec being built for container c.
type SpecOpts func(ctx context.Context, client Client, c *containers.Container, s *Spec) error

const (
	// DefaultRootfsPath is the spec's root, relative to the bundle: the
	// shim mounts the container's snapshot there.
	DefaultRootfsPath = "rootfs"
	// DefaultPathEnv is the PATH a process gets when nothing else sets
	// one.
	DefaultPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// ConfigFilename is the spec's file name in a bundle.
	ConfigFilename = "config.json"

	rwm = "rwm"
)

// GenerateSpec makes the default spec for c (namespaced by the context's
// namespace, as containerd's is) and applies opts in order.
func GenerateSpec(ctx context.Context, client Client, c *containers.Container, opts ...SpecOpts) (*Spec, error) {
	var s Spec
	if err := populateDefaultSpec(ctx, &s, c.ID); err != nil {
		return nil, err
	}
	if err := ApplyOpts(ctx, client, c, &s, opts...); err != nil {
		return nil, err
	}
	return &s, nil
}

// ApplyOpts applies opts to s in order.
func ApplyOpts(ctx context.Context, client Client, c *containers.Container, s *Spec, opts ...SpecOpts) error {
	for _, o := range opts {
		if err := o(ctx, client, c, s); err != nil {
			return err
		}
	}
	return nil
}

// Compose makes one option of several, applied in order.
func Compose(opts ...SpecOpts) SpecOpts {
	return func(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
		return ApplyOpts(ctx, client, c, s, opts...)
	}
}

// ReadSpec reads a spec from a JSON file.
func ReadSpec(path string) (*Spec, error) {
	p, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Spec
	if err := json.Unmarshal(p, &s); err != nil {
		return nil, fmt.Errorf("decode spec %s: %w", path, err)
	}
	return &s, nil
}

// populateDefaultSpec sets s to containerd's default Linux spec for
// container id: its own pid, ipc, uts, mount and network namespaces, a
// small set of capabilities, no new privileges, the kernel's sensitive
// files masked or read-only, access to no device but those runc always
// creates, and a cgroup named /<namespace>/<id>.
func populateDefaultSpec(ctx context.Context, s *Spec, id string) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	*s = Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: DefaultRootfsPath},
		Process: &specs.Process{
			Cwd:             "/",
			NoNewPrivileges: true,
			User:            specs.User{UID: 0, GID: 0},
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  defaultCaps(),
				Permitted: defaultCaps(),
				Effective: defaultCaps(),
			},
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		},
		Mounts: defaultMounts(),
		Linux: &specs.Linux{
			MaskedPaths:   defaultMaskedPaths(),
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
			CgroupsPath:   path.Join("/", ns, id),
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: rwm}},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
				{Type: specs.NetworkNamespace},
			},
		},
	}
	return nil
}

func defaultCaps() []string {
	return []string{
		"CAP_CHOWN",
		"CAP_DAC_OVERRIDE",
		"CAP_FSETID",
		"CAP_FOWNER",
		"CAP_MKNOD",
		"CAP_NET_RAW",
		"CAP_SETGID",
		"CAP_SETUID",
		"CAP_SETFCAP",
		"CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE",
		"CAP_SYS_CHROOT",
		"CAP_KILL",
		"CAP_AUDIT_WRITE",
	}
}

func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
	}
}

// maskedPaths is computed once: the thermal throttling files of the
// host's CPUs (which let a container throttle the host's CPUs) exist or
// not for the life of the program.
var maskedPaths = sync.OnceValue(func() []string {
	paths := []string{
		"/proc/acpi",
		"/proc/asound",
		"/proc/interrupts",
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/proc/sched_debug",
		"/sys/firmware",
		"/sys/devices/virtual/powercap",
		"/proc/scsi",
	}
	for _, cpu := range possibleCPUs() {
		p := fmt.Sprintf("/sys/devices/system/cpu/cpu%d/thermal_throttle", cpu)
		if _, err := os.Stat(p); err == nil {
			paths = append(paths, p)
		}
	}
	return paths
})

func defaultMaskedPaths() []string { return slices.Clone(maskedPaths()) }

// possibleCPUs lists the CPUs the kernel could bring online ("0-3,8"),
// or, if that cannot be read, those this process can see.
func possibleCPUs() []int {
	if p, err := os.ReadFile("/sys/devices/system/cpu/possible"); err == nil {
		if cpus, ok := parseCPUList(strings.TrimSpace(string(p))); ok {
			return cpus
		}
	}
	cpus := make([]int, runtime.NumCPU())
	for i := range cpus {
		cpus[i] = i
	}
	return cpus
}

func parseCPUList(list string) ([]int, bool) {
	var cpus []int
	for r := range strings.SplitSeq(list, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		// A bound keeps a corrupt file from making a huge list.
		if err1 != nil || err2 != nil || a < 0 || b < a || b > 1<<16 {
			return nil, false
		}
		for i := a; i <= b; i++ {
			cpus = append(cpus, i)
		}
	}
	return cpus, len(cpus) > 0
}

func setProcess(s *Spec) {
	if s.Process == nil {
		s.Process = &specs.Process{}
	}
}

func setRoot(s *Spec) {
	if s.Root == nil {
		s.Root = &specs.Root{}
	}
}

func setLinux(s *Spec) {
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
}

func setResources(s *Spec) {
	setLinux(s)
	if s.Linux.Resources == nil {
		s.Linux.Resources = &specs.LinuxResources{}
	}
}

func setCPU(s *Spec) {
	setResources(s)
	if s.Linux.Resources.CPU == nil {
		s.Linux.Resources.CPU = &specs.LinuxCPU{}
	}
}

func setMemory(s *Spec) {
	setResources(s)
	if s.Linux.Resources.Memory == nil {
		s.Linux.Resources.Memory = &specs.LinuxMemory{}
	}
}

func setCapabilities(s *Spec) {
	setProcess(s)
	if s.Process.Capabilities == nil {
		s.Process.Capabilities = &specs.LinuxCapabilities{}
	}
}
