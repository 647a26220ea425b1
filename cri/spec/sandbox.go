package spec

import (
	"context"
	"fmt"
	"maps"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/oci"
)

// Sysctls a pod with its own network namespace gets unless it sets them,
// when the config enables them: unprivileged processes may bind low
// ports and ping.
const (
	sysctlUnprivilegedPortStart = "net.ipv4.ip_unprivileged_port_start"
	sysctlPingGroupRange        = "net.ipv4.ping_group_range"
)

func sandboxSpec(ctx context.Context, in SandboxInput) (*specs.Spec, error) {
	cfg := in.Config
	if cfg == nil {
		return nil, fmt.Errorf("sandbox %s: no pod sandbox config: %w", in.ID, errdefs.ErrInvalidArgument)
	}
	cri := in.CRI
	if cri == nil {
		cri = config.Default()
	}
	if len(in.Image.Entrypoint) == 0 && len(in.Image.Cmd) == 0 {
		return nil, fmt.Errorf("sandbox image %s has neither entrypoint nor cmd: %w", in.ImageName, errdefs.ErrInvalidArgument)
	}
	sc := cfg.GetLinux().GetSecurityContext()
	nsOpts := sc.GetNamespaceOptions()
	hostNet := nsOpts.GetNetwork() == runtime.NamespaceMode_NODE
	hostIPC := nsOpts.GetIpc() == runtime.NamespaceMode_NODE

	s, ctx, client, c, err := newSpec(ctx, in.ID, config.Runtime{}, in.Rootfs)
	if err != nil {
		return nil, err
	}

	opts := []oci.SpecOpts{
		oci.WithoutRunMount,
		withoutDefaultSecurity,
		oci.WithRootFSPath(oci.DefaultRootfsPath),
		oci.WithEnv(in.Image.Env),
		oci.WithRootFSReadonly(),
		oci.WithProcessArgs(append(append([]string(nil), in.Image.Entrypoint...), in.Image.Cmd...)...),
	}
	// A hostname needs a UTS namespace of the pod's own, which host
	// network pods do not have (kubelet sends none for them).
	if !hostNet {
		opts = append(opts, oci.WithHostname(cfg.GetHostname()))
	}
	if in.Image.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(in.Image.WorkingDir))
	}
	if in.CgroupsPath != "" {
		opts = append(opts, oci.WithCgroup(in.CgroupsPath))
	}

	// Namespaces: new pid, ipc, uts and mount ones, the pod's network
	// namespace, or the host's as the options say.
	if hostNet {
		opts = append(opts, withoutNamespace(specs.NetworkNamespace), withoutNamespace(specs.UTSNamespace))
	} else if in.NetNSPath != "" {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.NetNSPath}))
	}
	if nsOpts.GetPid() == runtime.NamespaceMode_NODE {
		opts = append(opts, withoutNamespace(specs.PIDNamespace))
	}
	if hostIPC {
		opts = append(opts, withoutNamespace(specs.IPCNamespace))
	}
	switch p := nsOpts.GetPid(); p {
	case runtime.NamespaceMode_POD, runtime.NamespaceMode_CONTAINER, runtime.NamespaceMode_NODE:
	default:
		return nil, fmt.Errorf("sandbox pid namespace mode %s: %w", p, errdefs.ErrInvalidArgument)
	}

	uids, gids, err := parseUserns(nsOpts.GetUsernsOptions())
	if err != nil {
		return nil, err
	}
	userns := nsOpts.GetUsernsOptions().GetMode() == runtime.NamespaceMode_POD && nsOpts.GetUsernsOptions() != nil
	if userns {
		opts = append(opts, oci.WithUserNamespace(uids, gids))
		if in.UserNSPath != "" && !hostNet {
			opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.UserNamespace, Path: in.UserNSPath}))
		}
	}

	// /dev/shm: the pod's tmpfs (the host's with host IPC), shared with
	// its containers; read-only in the pause container, which never
	// writes it. nosuid, nodev and noexec are needed for the remount in a
	// user namespace.
	var mounts []specs.Mount
	shm := in.ShmPath
	if hostIPC {
		shm = DevShm
	}
	if shm != "" {
		opts = append(opts, oci.WithoutMounts(DevShm))
		mounts = append(mounts, specs.Mount{Source: shm, Destination: DevShm, Type: "bind", Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}})
	}
	// resolv.conf is there for VM runtimes (kata) to set the pod's DNS up.
	if in.ResolvPath != "" {
		mounts = append(mounts, specs.Mount{Source: in.ResolvPath, Destination: ResolvConf, Type: "bind", Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}})
	}
	if hostNet && userns {
		opts = append(opts, oci.WithoutMounts("/sys"))
		mounts = append(mounts, sysBindMount())
	}
	opts = append(opts, oci.WithMounts(mounts))

	sysctls := maps.Clone(cfg.GetLinux().GetSysctls())
	if sysctls == nil {
		sysctls = map[string]string{}
	}
	if !hostNet {
		if _, ok := sysctls[sysctlUnprivilegedPortStart]; !ok && cri.EnableUnprivilegedPorts {
			sysctls[sysctlUnprivilegedPortStart] = "0"
		}
		// In a user namespace not every gid maps: the range would be
		// refused.
		if _, ok := sysctls[sysctlPingGroupRange]; !ok && cri.EnableUnprivilegedICMP && !userns && !runningInUserNS() {
			sysctls[sysctlPingGroupRange] = "0 2147483647"
		}
	}
	opts = append(opts, withSysctls(sysctls), oci.WithCPUShares(SandboxCPUShares))

	if res := cfg.GetLinux().GetResources(); res != nil {
		opts = append(opts, oci.WithAnnotations(map[string]string{
			AnnotationSandboxCPUPeriod: strconv.FormatInt(res.GetCpuPeriod(), 10),
			AnnotationSandboxCPUQuota:  strconv.FormatInt(res.GetCpuQuota(), 10),
			AnnotationSandboxCPUShares: strconv.FormatInt(res.GetCpuShares(), 10),
			AnnotationSandboxMemory:    strconv.FormatInt(res.GetMemoryLimitInBytes(), 10),
		}))
	}
	opts = append(opts,
		withOOMScoreAdj(SandboxOOMScoreAdj, cri.RestrictOOMScoreAdj),
		oci.WithAnnotations(passthroughAnnotations(cfg.GetAnnotations(), in.Runtime.PodAnnotations)),
		oci.WithAnnotations(map[string]string{
			AnnotationSandboxID:        in.ID,
			AnnotationSandboxNamespace: cfg.GetMetadata().GetNamespace(),
			AnnotationSandboxUID:       cfg.GetMetadata().GetUid(),
			AnnotationSandboxName:      cfg.GetMetadata().GetName(),
			AnnotationSandboxLogDir:    cfg.GetLogDirectory(),
			AnnotationSandboxImageName: in.ImageName,
			AnnotationContainerType:    ContainerTypeSandbox,
		}),
	)

	// Confinement and user, last: the default seccomp profile depends on
	// the capabilities, the user look-up on nothing before it.
	//lint:ignore SA1019 the deprecated field is still sent by older kubelets
	ssp, err := seccompProfile(sc.GetSeccomp(), sc.GetSeccompProfilePath(), cri.UnsetSeccompProfile)
	if err != nil {
		return nil, err
	}
	opts = append(opts, withSeccomp(ssp, sc.GetPrivileged()))
	userstr, err := userString("", sc.GetRunAsUser(), sc.GetRunAsGroup())
	if err != nil {
		return nil, err
	}
	if userstr == "" {
		userstr = in.Image.User
	}
	if userstr != "" {
		opts = append(opts, withUser(userstr, len(in.Rootfs) > 0))
	}
	opts = append(opts, withSupplementalGroups(sc.GetSupplementalGroups()))

	if err := oci.ApplyOpts(ctx, client, c, s, opts...); err != nil {
		return nil, fmt.Errorf("sandbox %s spec: %w", in.ID, err)
	}
	return s, nil
}
