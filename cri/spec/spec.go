// Package spec makes the OCI runtime specs of the CRI plugin's containers:
// a pod's sandbox (pause) container and its workload containers, from the
// CRI request, the image's config and the plugin's config.
package spec

import (
	"context"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/mount"
)

// SandboxInput is what a sandbox container's spec is made from.
type SandboxInput struct {
	ID     string
	Config *runtime.PodSandboxConfig
	// Image is the sandbox image's config.
	Image ocispec.ImageConfig
	// NetNSPath is the pod's network namespace; "" with host network.
	NetNSPath string
	// HostnamePath, HostsPath, ResolvPath and ShmPath are the files and
	// the /dev/shm mount the sandbox keeps for all its containers (empty:
	// not made, e.g. ShmPath with host IPC).
	HostnamePath, HostsPath, ResolvPath, ShmPath string
	// CgroupsPath is the sandbox container's cgroup (from the pod's
	// cgroup parent and the runtime's cgroup driver).
	CgroupsPath string
	Runtime     config.Runtime
	CRI         *config.Config
}

// Sandbox returns the pause container's spec.
func Sandbox(ctx context.Context, in SandboxInput) (*specs.Spec, error) {
	return nil, errdefs.ErrNotImplemented
}

// ContainerInput is what a workload container's spec is made from.
type ContainerInput struct {
	ID        string
	SandboxID string
	// SandboxPid is the pause container's pid: the container joins its
	// namespaces (/proc/<pid>/ns/...) as the pod's options say.
	SandboxPid    uint32
	NetNSPath     string
	Config        *runtime.ContainerConfig
	SandboxConfig *runtime.PodSandboxConfig
	// Image is the container image's config.
	Image ocispec.ImageConfig
	// Rootfs are the mounts of the container's root filesystem, to look
	// users and groups up in its /etc/passwd and /etc/group.
	Rootfs []mount.Mount
	// The sandbox's files, bind mounted into the container unless the
	// container mounts something over them.
	HostnamePath, HostsPath, ResolvPath, ShmPath string
	// CgroupsPath is the container's cgroup.
	CgroupsPath string
	Runtime     config.Runtime
	CRI         *config.Config
}

// Container returns a workload container's spec.
func Container(ctx context.Context, in ContainerInput) (*specs.Spec, error) {
	return nil, errdefs.ErrNotImplemented
}

// Resources converts CRI resources to OCI ones, with the plugin's
// config applied (restrict_oom_score_adj, hugetlb settings); for create
// and UpdateContainerResources alike.
func Resources(r *runtime.LinuxContainerResources, cri *config.Config) *specs.LinuxResources {
	return nil
}

// ExecProcess returns the process spec of an exec in a container whose
// spec is base: its user, env, cwd, capabilities and security settings,
// with args cmd and a terminal if tty.
func ExecProcess(base *specs.Spec, cmd []string, tty bool) (*specs.Process, error) {
	return nil, errdefs.ErrNotImplemented
}

// CgroupsPath returns the cgroup path of a container (or a sandbox, with
// an empty sandbox id... see the implementation) under parent for the
// runtime's cgroup driver: "parent/id" for cgroupfs, "slice:cri-containerd:id"
// for systemd.
func CgroupsPath(parent, id string, systemd bool) string {
	return ""
}
