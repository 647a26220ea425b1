// Package spec makes the OCI runtime specs of the CRI plugin's containers:
// a pod's sandbox (pause) container and its workload containers, from the
// CRI request, the image's config and the plugin's config.
//
// The specs are containerd 2.x's (internal/cri): the default spec of the
// oci package without its rlimits, seccomp and AppArmor, changed by the
// request. Errors for bad requests wrap errdefs.ErrInvalidArgument (an
// unsupported feature: errdefs.ErrNotImplemented), so that
// errdefs.ToGRPC gives the CRI's codes.
package spec

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/oci"
)

// Annotations the specs carry, as containerd's CRI sets them (runtimes
// such as kata read them).
const (
	AnnotationContainerType    = "io.kubernetes.cri.container-type"
	ContainerTypeSandbox       = "sandbox"
	ContainerTypeContainer     = "container"
	AnnotationSandboxID        = "io.kubernetes.cri.sandbox-id"
	AnnotationSandboxName      = "io.kubernetes.cri.sandbox-name"
	AnnotationSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	AnnotationSandboxUID       = "io.kubernetes.cri.sandbox-uid"
	AnnotationSandboxLogDir    = "io.kubernetes.cri.sandbox-log-directory"
	AnnotationSandboxImageName = "io.kubernetes.cri.podsandbox.image-name"
	AnnotationContainerName    = "io.kubernetes.cri.container-name"
	AnnotationImageName        = "io.kubernetes.cri.image-name"
	AnnotationSandboxCPUPeriod = "io.kubernetes.cri.sandbox-cpu-period"
	AnnotationSandboxCPUQuota  = "io.kubernetes.cri.sandbox-cpu-quota"
	AnnotationSandboxCPUShares = "io.kubernetes.cri.sandbox-cpu-shares"
	AnnotationSandboxMemory    = "io.kubernetes.cri.sandbox-memory"
)

const (
	// SandboxOOMScoreAdj is the pause container's oom_score_adj: the
	// kernel kills it (and with it the pod) last.
	SandboxOOMScoreAdj = -998
	// SandboxCPUShares is the pause container's CPU weight: it only sleeps.
	SandboxCPUShares = 2
	// DevShm, EtcHostname, EtcHosts and ResolvConf are where the sandbox's
	// files go in its containers.
	DevShm      = "/dev/shm"
	EtcHostname = "/etc/hostname"
	EtcHosts    = "/etc/hosts"
	ResolvConf  = "/etc/resolv.conf"
)

// SandboxInput is what a sandbox container's spec is made from.
type SandboxInput struct {
	ID     string
	Config *runtime.PodSandboxConfig
	// Image is the sandbox image's config.
	Image ocispec.ImageConfig
	// ImageName is the sandbox image's reference, for the
	// io.kubernetes.cri.podsandbox.image-name annotation.
	ImageName string
	// NetNSPath is the pod's network namespace; "" with host network.
	NetNSPath string
	// HostnamePath, HostsPath, ResolvPath and ShmPath are the files and
	// the /dev/shm mount the sandbox keeps for all its containers (empty:
	// not made, e.g. ShmPath with host IPC). The pause container itself
	// gets /dev/shm (the host's with host IPC) and resolv.conf only, as in
	// containerd.
	HostnamePath, HostsPath, ResolvPath, ShmPath string
	// UserNSPath is a user namespace pinned for the pod (with the pod's
	// mappings) for the pause container to join; "" makes a new one. Only
	// read when the pod asks for a user namespace (UsernsOptions mode POD).
	UserNSPath string
	// Rootfs are the mounts of the pause container's root filesystem, to
	// look its user up when the pod sets run_as_user without run_as_group
	// or the image names its user; without them a lone uid gets gid 0 and
	// a user name is an error.
	Rootfs []mount.Mount
	// CgroupsPath is the sandbox container's cgroup (from the pod's
	// cgroup parent and the runtime's cgroup driver, see CgroupsPath);
	// "" keeps the default, /k8s.io/<id>.
	CgroupsPath string
	Runtime     config.Runtime
	CRI         *config.Config
}

// Sandbox returns the pause container's spec.
func Sandbox(ctx context.Context, in SandboxInput) (*specs.Spec, error) {
	return sandboxSpec(ctx, in)
}

// ContainerInput is what a workload container's spec is made from.
type ContainerInput struct {
	ID        string
	SandboxID string
	// SandboxPid is the pause container's pid: the container joins its
	// namespaces (/proc/<pid>/ns/...) as the pod's options say.
	SandboxPid uint32
	// TargetPid is the pid of the container whose pid namespace the
	// container joins when its pid namespace mode is TARGET.
	TargetPid uint32
	// NetNSPath is the pod's network namespace; unused on Linux, where
	// the container joins the pause container's (/proc/<pid>/ns/net).
	NetNSPath     string
	Config        *runtime.ContainerConfig
	SandboxConfig *runtime.PodSandboxConfig
	// Image is the container image's config.
	Image ocispec.ImageConfig
	// ImageName is the image's name for the io.kubernetes.cri.image-name
	// annotation: the user specified image, else the image's reference.
	ImageName string
	// Rootfs are the mounts of the container's root filesystem, to look
	// users and groups up in its /etc/passwd and /etc/group.
	Rootfs []mount.Mount
	// The sandbox's files, bind mounted into the container unless the
	// container mounts something over them (a path that does not exist
	// on the host is skipped, as containerd does). With host IPC the
	// container gets the host's /dev/shm instead of ShmPath.
	HostnamePath, HostsPath, ResolvPath, ShmPath string
	// VolumesDir is where host directories for the image's VOLUMEs are
	// made (<VolumesDir>/<hash of the destination>), unless the config
	// says ignore_image_defined_volumes; "" skips image volumes. They
	// start empty: the image's content at that path is not copied.
	VolumesDir string
	// RecursiveReadOnlyMounts tells whether the runtime (runc >= 1.1 with
	// a kernel >= 5.12) supports "rro" mounts; a CRI mount asking for a
	// recursive read-only mount is refused without it.
	RecursiveReadOnlyMounts bool
	// CgroupsPath is the container's cgroup (see CgroupsPath); "" keeps
	// the default, /k8s.io/<id>.
	CgroupsPath string
	Runtime     config.Runtime
	CRI         *config.Config
}

// Container returns a workload container's spec.
func Container(ctx context.Context, in ContainerInput) (*specs.Spec, error) {
	return containerSpec(ctx, in)
}

// Resources converts CRI resources to OCI ones, with the plugin's
// config applied (restrict_oom_score_adj, hugetlb settings); for create
// and UpdateContainerResources alike. Hugepage limits the host cannot
// apply are left out; ContainerResources reports that as an error.
// (oom_score_adj is the process's, not a resource: see OOMScoreAdj.)
func Resources(r *runtime.LinuxContainerResources, cri *config.Config) *specs.LinuxResources {
	if cri == nil {
		cri = config.Default()
	}
	res, err := ContainerResources(r, cri)
	if err != nil {
		cfg := *cri
		cfg.DisableHugetlbController = true
		res, _ = ContainerResources(r, &cfg)
	}
	return res
}

// ExecProcess returns the process spec of an exec in a container whose
// spec is base: its user, env, cwd, capabilities and security settings,
// with args cmd and a terminal if tty (and then TERM=xterm, as
// containerd).
func ExecProcess(base *specs.Spec, cmd []string, tty bool) (*specs.Process, error) {
	if base == nil || base.Process == nil {
		return nil, fmt.Errorf("exec: the container's spec has no process: %w", errdefs.ErrFailedPrecondition)
	}
	if len(cmd) == 0 {
		return nil, fmt.Errorf("exec: empty command: %w", errdefs.ErrInvalidArgument)
	}
	// A deep copy: the process shares slices and pointers with the
	// container's spec, which must not change.
	p, err := json.Marshal(base.Process)
	if err != nil {
		return nil, err
	}
	var proc specs.Process
	if err := json.Unmarshal(p, &proc); err != nil {
		return nil, err
	}
	proc.Args = append([]string(nil), cmd...)
	proc.CommandLine = ""
	proc.Terminal = tty
	proc.ConsoleSize = nil
	if tty {
		proc.Env = oci.MergeEnv(proc.Env, []string{"TERM=xterm"})
	}
	return &proc, nil
}

// CgroupsPath returns the cgroup path of a container (or a sandbox) with
// id under parent for the runtime's cgroup driver: "parent/id" for
// cgroupfs, "slice:cri-containerd:id" for systemd (slice the last
// element of parent). A parent whose last element is a .slice is taken
// as systemd's whatever the driver, as containerd does. An empty parent
// gives "" (the spec's default, /k8s.io/<id>) for cgroupfs and
// ":cri-containerd:id" (runc's default slice) for systemd.
func CgroupsPath(parent, id string, systemd bool) string {
	base := path.Base(parent)
	if parent == "" {
		if systemd {
			return ":cri-containerd:" + id
		}
		return ""
	}
	if systemd || strings.HasSuffix(base, ".slice") {
		if base == "/" || base == "." {
			base = ""
		}
		return base + ":cri-containerd:" + id
	}
	return path.Join(parent, id)
}
