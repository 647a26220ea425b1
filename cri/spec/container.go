package spec

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/oci"
)

// Args returns a container's process args from its config and its
// image's, by Kubernetes' rules: command replaces the image's entrypoint
// (and then the image's cmd is dropped), args replace the image's cmd.
// An image entrypoint of [""] means none (docker's way to reset it).
func Args(cfg *runtime.ContainerConfig, entrypoint, cmd []string) ([]string, error) {
	command, args := cfg.GetCommand(), cfg.GetArgs()
	if len(command) == 0 {
		if len(args) == 0 {
			args = cmd
		}
		if len(entrypoint) != 1 || entrypoint[0] != "" {
			command = entrypoint
		}
	}
	out := append(append([]string(nil), command...), args...)
	if len(out) == 0 {
		return nil, fmt.Errorf("no command specified: neither the container config nor the image has one: %w", errdefs.ErrInvalidArgument)
	}
	return out, nil
}

func containerSpec(ctx context.Context, in ContainerInput) (*specs.Spec, error) {
	cfg, sbCfg := in.Config, in.SandboxConfig
	if cfg == nil || sbCfg == nil {
		return nil, fmt.Errorf("container %s: the container and sandbox configs are required: %w", in.ID, errdefs.ErrInvalidArgument)
	}
	cri := in.CRI
	if cri == nil {
		cri = config.Default()
	}
	sc := cfg.GetLinux().GetSecurityContext()
	nsOpts := sc.GetNamespaceOptions()
	privileged := sc.GetPrivileged()
	if privileged && !sbCfg.GetLinux().GetSecurityContext().GetPrivileged() {
		return nil, fmt.Errorf("container %s: no privileged container allowed in a sandbox that is not privileged: %w", in.ID, errdefs.ErrInvalidArgument)
	}
	//lint:ignore SA1019 the deprecated field is still sent by older kubelets
	if err := checkAppArmor(sc.GetApparmor(), sc.GetApparmorProfile()); err != nil {
		return nil, err
	}
	if len(cfg.GetCDIDevices()) > 0 {
		return nil, fmt.Errorf("container %s: CDI devices (%s...) are not supported: %w", in.ID, cfg.GetCDIDevices()[0].GetName(), errdefs.ErrNotImplemented)
	}
	args, err := Args(cfg, in.Image.Entrypoint, in.Image.Cmd)
	if err != nil {
		return nil, err
	}

	s, ctx, client, c, err := newSpec(ctx, in.ID, in.Runtime, in.Rootfs)
	if err != nil {
		return nil, err
	}
	opts := []oci.SpecOpts{oci.WithoutRunMount}
	// A base_runtime_spec's confinement and rlimits are the admin's
	// defaults: kept.
	if in.Runtime.BaseRuntimeSpec == "" {
		opts = append(opts, withoutDefaultSecurity)
	}
	opts = append(opts,
		oci.WithRootFSPath(oci.DefaultRootfsPath),
		oci.WithProcessArgs(args...),
		oci.WithDefaultPathEnv,
		// no_new_privs below decides.
		oci.WithNewPrivileges,
	)
	if wd := cfg.GetWorkingDir(); wd != "" {
		opts = append(opts, oci.WithProcessCwd(wd))
	} else if in.Image.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(in.Image.WorkingDir))
	}
	if cfg.GetTty() {
		opts = append(opts, oci.WithTTY)
	}

	// Env: HOSTNAME (the pod's), then the image's, then the config's, each
	// overriding the ones before.
	host := sbCfg.GetHostname()
	if host == "" {
		if host, err = hostname(); err != nil {
			return nil, fmt.Errorf("hostname: %w", err)
		}
	}
	env := []string{"HOSTNAME=" + host}
	env = append(env, in.Image.Env...)
	for _, e := range cfg.GetEnvs() {
		if e.GetKey() == "" {
			return nil, fmt.Errorf("env with an empty name (value %q): %w", e.GetValue(), errdefs.ErrInvalidArgument)
		}
		env = append(env, e.GetKey()+"="+string(e.GetValue()))
	}
	opts = append(opts, oci.WithEnv(env))

	// A cgroup namespace hides the host's cgroups (cgroup v2 only; not
	// for privileged containers, which may manage the host's).
	if cgroup2() && !privileged {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.CgroupNamespace}))
	}

	extra := append(sandboxFileMounts(in), imageVolumeMounts(in)...)
	opts = append(opts, withCRIMounts(cfg, extra, in.RecursiveReadOnlyMounts, in.Runtime.CgroupWritable))

	// Masked and read-only paths are the request's (kubelet sends the
	// default lists, or none for an unmasked /proc); none if it sends
	// none, as in containerd. disable_proc_mount keeps the defaults.
	if !cri.DisableProcMount {
		opts = append(opts, oci.WithMaskedPaths([]string{}), oci.WithReadonlyPaths([]string{}))
		if p := sc.GetMaskedPaths(); p != nil {
			opts = append(opts, oci.WithMaskedPaths(p))
		}
		if p := sc.GetReadonlyPaths(); p != nil {
			opts = append(opts, oci.WithReadonlyPaths(p))
		}
	}

	opts = append(opts,
		withDevices(cfg, cri.DeviceOwnershipFromSecurityContext),
		withCapabilities(sc.GetCapabilities(), allCapabilities()),
	)
	if privileged {
		opts = append(opts, oci.WithPrivilegedWithoutHostDevices)
		if !in.Runtime.PrivilegedWithoutHostDevices {
			opts = append(opts, oci.WithHostDevices, oci.WithAllDevicesAllowed)
		} else if in.Runtime.PrivilegedWithoutHostDevicesAllDevicesAllowed {
			opts = append(opts, oci.WithAllDevicesAllowed)
		}
	}
	opts = append(opts, withoutAmbientCapabilities)
	if sc.GetNoNewPrivs() {
		opts = append(opts, oci.WithNoNewPrivileges)
	}
	if sc.GetReadonlyRootfs() {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	opts = append(opts, withResources(cfg.GetLinux().GetResources(), cri))
	if in.CgroupsPath != "" {
		opts = append(opts, oci.WithCgroup(in.CgroupsPath))
	}
	opts = append(opts,
		oci.WithAnnotations(passthroughAnnotations(sbCfg.GetAnnotations(), in.Runtime.PodAnnotations)),
		oci.WithAnnotations(passthroughAnnotations(cfg.GetAnnotations(), in.Runtime.ContainerAnnotations)),
	)

	// Namespaces: the pod's network, ipc and uts; pid as asked.
	pidOf := in.SandboxPid
	switch nsOpts.GetPid() {
	case runtime.NamespaceMode_CONTAINER:
	case runtime.NamespaceMode_POD, runtime.NamespaceMode_NODE:
		// With host pid the pause container is in the host's.
	case runtime.NamespaceMode_TARGET:
		if nsOpts.GetTargetId() == "" || in.TargetPid == 0 {
			return nil, fmt.Errorf("pid namespace mode TARGET needs a running target container (target_id %q): %w", nsOpts.GetTargetId(), errdefs.ErrInvalidArgument)
		}
		pidOf = in.TargetPid
	default:
		return nil, fmt.Errorf("pid namespace mode %s: %w", nsOpts.GetPid(), errdefs.ErrInvalidArgument)
	}
	if in.SandboxPid == 0 {
		return nil, fmt.Errorf("container %s: the sandbox's pid is unknown (is the sandbox running?): %w", in.ID, errdefs.ErrFailedPrecondition)
	}
	opts = append(opts,
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: nsPath(in.SandboxPid, "net")}),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.IPCNamespace, Path: nsPath(in.SandboxPid, "ipc")}),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.UTSNamespace, Path: nsPath(in.SandboxPid, "uts")}),
	)
	if nsOpts.GetPid() != runtime.NamespaceMode_CONTAINER {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.PIDNamespace, Path: nsPath(pidOf, "pid")}))
	}

	uids, gids, err := parseUserns(nsOpts.GetUsernsOptions())
	if err != nil {
		return nil, err
	}
	sbUserns := sbCfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	if !sameUserns(sbUserns, nsOpts.GetUsernsOptions()) {
		return nil, fmt.Errorf("container %s: its user namespace options (%v) differ from its pod's (%v): %w", in.ID, nsOpts.GetUsernsOptions(), sbUserns, errdefs.ErrInvalidArgument)
	}
	userns := nsOpts.GetUsernsOptions() != nil && nsOpts.GetUsernsOptions().GetMode() == runtime.NamespaceMode_POD
	if userns {
		opts = append(opts,
			oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.UserNamespace, Path: nsPath(in.SandboxPid, "user")}),
			oci.WithUserNamespace(uids, gids))
		if sbCfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtime.NamespaceMode_NODE {
			opts = append(opts, oci.WithoutMounts("/sys"), oci.WithMounts([]specs.Mount{sysBindMount()}))
		}
	}

	var oom []oci.SpecOpts
	if res := cfg.GetLinux().GetResources(); res != nil {
		oom = append(oom, withOOMScoreAdj(int(res.GetOomScoreAdj()), cri.RestrictOOMScoreAdj))
	}
	opts = append(opts, oom...)
	opts = append(opts, oci.WithAnnotations(map[string]string{
		AnnotationSandboxID:        in.SandboxID,
		AnnotationSandboxNamespace: sbCfg.GetMetadata().GetNamespace(),
		AnnotationSandboxUID:       sbCfg.GetMetadata().GetUid(),
		AnnotationSandboxName:      sbCfg.GetMetadata().GetName(),
		AnnotationContainerName:    cfg.GetMetadata().GetName(),
		AnnotationImageName:        in.ImageName,
		AnnotationContainerType:    ContainerTypeContainer,
	}))

	// The user and its groups, then seccomp (whose default profile
	// depends on the capabilities set above).
	userOpts, err := containerUser(in)
	if err != nil {
		return nil, err
	}
	opts = append(opts, userOpts...)
	//lint:ignore SA1019 the deprecated field is still sent by older kubelets
	ssp, err := seccompProfile(sc.GetSeccomp(), sc.GetSeccompProfilePath(), cri.UnsetSeccompProfile)
	if err != nil {
		return nil, err
	}
	opts = append(opts, withSeccomp(ssp, privileged))

	if err := oci.ApplyOpts(ctx, client, c, s, opts...); err != nil {
		return nil, fmt.Errorf("container %s spec: %w", in.ID, err)
	}
	return s, nil
}

func nsPath(pid uint32, ns string) string {
	return "/proc/" + strconv.FormatUint(uint64(pid), 10) + "/ns/" + ns
}

// containerUser sets the process's user: run_as_username, else
// run_as_user (with run_as_group), else the image's user, else root;
// names and a lone uid's primary group are looked up in the container's
// /etc/passwd and /etc/group. Supplementary groups by the policy: Merge
// (the default) adds the groups /etc/group lists the user in to
// supplemental_groups, Strict takes supplemental_groups only. The primary
// group is always among them.
func containerUser(in ContainerInput) ([]oci.SpecOpts, error) {
	sc := in.Config.GetLinux().GetSecurityContext()
	userstr, err := userString(sc.GetRunAsUsername(), sc.GetRunAsUser(), sc.GetRunAsGroup())
	if err != nil {
		return nil, err
	}
	if userstr == "" {
		userstr = in.Image.User
	}
	haveRootfs := len(in.Rootfs) > 0
	var opts []oci.SpecOpts
	if userstr != "" {
		opts = append(opts, withUser(userstr, haveRootfs))
	} else {
		opts = append(opts, oci.WithUIDGID(0, 0))
	}
	// The user whose /etc/group memberships count: the group part of
	// the image's user does not change them.
	groupUser := "0"
	switch {
	case sc.GetRunAsUsername() != "":
		groupUser = sc.GetRunAsUsername()
	case sc.GetRunAsUser() != nil:
		groupUser = strconv.FormatInt(sc.GetRunAsUser().GetValue(), 10)
	case in.Image.User != "":
		groupUser, _, _ = strings.Cut(in.Image.User, ":")
	}
	switch p := sc.GetSupplementalGroupsPolicy(); p {
	case runtime.SupplementalGroupsPolicy_Merge:
		if haveRootfs {
			opts = append(opts, withGroupsOf(groupUser))
		}
	case runtime.SupplementalGroupsPolicy_Strict:
	default:
		return nil, fmt.Errorf("supplemental groups policy %s: %w", p, errdefs.ErrInvalidArgument)
	}
	return append(opts, withSupplementalGroups(sc.GetSupplementalGroups())), nil
}

// withGroupsOf adds the groups the container's /etc/group lists user in.
func withGroupsOf(user string) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *specs.Spec) error {
		have := append([]uint32(nil), s.Process.User.AdditionalGids...)
		if err := oci.WithAdditionalGIDs(user)(ctx, client, c, s); err != nil {
			return fmt.Errorf("groups of user %s: %w", user, err)
		}
		groups := make([]int64, len(have))
		for i, g := range have {
			groups[i] = int64(g)
		}
		return withSupplementalGroups(groups)(ctx, client, c, s)
	}
}

// withDevices gives the container the CRI's devices (a host device node,
// or every node under a host directory) with their cgroup permissions.
// With device_ownership_from_security_context they belong to the
// container's run_as_user and run_as_group instead of the host's owner.
func withDevices(cfg *runtime.ContainerConfig, ownershipFromSC bool) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *specs.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		before := len(s.Linux.Devices)
		for _, d := range cfg.GetDevices() {
			perms := d.GetPermissions()
			if perms == "" || strings.Trim(perms, "rwm") != "" {
				return fmt.Errorf("device %s: invalid permissions %q: want a combination of r, w and m: %w", d.GetHostPath(), perms, errdefs.ErrInvalidArgument)
			}
			host, err := evalSymlinks(d.GetHostPath())
			if err != nil {
				return fmt.Errorf("device %s: %w: %w", d.GetHostPath(), err, errdefs.ErrInvalidArgument)
			}
			if err := oci.WithDevices(host, d.GetContainerPath(), perms)(ctx, client, c, s); err != nil {
				return fmt.Errorf("device %s: %w: %w", d.GetHostPath(), err, errdefs.ErrInvalidArgument)
			}
		}
		if ownershipFromSC {
			sc := cfg.GetLinux().GetSecurityContext()
			for i := before; i < len(s.Linux.Devices); i++ {
				d := &s.Linux.Devices[i]
				if u := sc.GetRunAsUser(); u != nil && u.GetValue() != 0 {
					uid := uint32(u.GetValue())
					d.UID = &uid
				}
				if g := sc.GetRunAsGroup(); g != nil && g.GetValue() != 0 {
					gid := uint32(g.GetValue())
					d.GID = &gid
				}
			}
		}
		return nil
	}
}

// evalSymlinks resolves a device path's links (/dev/disk/by-id/...).
var evalSymlinks = filepath.EvalSymlinks
