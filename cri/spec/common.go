package spec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/oci"
	"github.com/llitfkitfk/containerd/snapshots"
)

// rootfsSnapshotter name is what the oci package's user look-ups are
// told the root filesystem's snapshotter is: they ask rootfsClient for
// its mounts, which are the ones the caller passed.
const rootfsSnapshotter = "cri-rootfs"

// rootfsClient hands the oci package's user and group look-ups the
// container's root filesystem mounts, so that they read its /etc/passwd
// and /etc/group (a lone bind mount in place, others mounted read-only)
// without a snapshot service.
type rootfsClient struct{ mounts []mount.Mount }

func (c rootfsClient) SnapshotService(string) snapshots.Snapshotter {
	return rootfsMounts{mounts: c.mounts}
}

// rootfsMounts answers Mounts only; the look-ups call nothing else, and
// the embedded nil interface makes any other call fail loudly.
type rootfsMounts struct {
	snapshots.Snapshotter
	mounts []mount.Mount
}

func (m rootfsMounts) Mounts(context.Context, string) ([]mount.Mount, error) {
	return m.mounts, nil
}

// newSpec returns the spec to start from for id: the runtime's
// base_runtime_spec if it has one (with the default cgroup path), else
// the oci package's default spec. It also returns the context, client and
// container the oci options are applied with.
func newSpec(ctx context.Context, id string, rt config.Runtime, rootfs []mount.Mount) (*specs.Spec, context.Context, oci.Client, *containers.Container, error) {
	if id == "" {
		return nil, nil, nil, nil, fmt.Errorf("empty container id: %w", errdefs.ErrInvalidArgument)
	}
	ctx = namespaces.WithNamespace(ctx, config.Namespace)
	c := &containers.Container{ID: id}
	var client oci.Client
	if len(rootfs) > 0 {
		c.Snapshotter, c.SnapshotKey = rootfsSnapshotter, id
		client = rootfsClient{mounts: rootfs}
	}
	if rt.BaseRuntimeSpec != "" {
		s, err := oci.ReadSpec(rt.BaseRuntimeSpec)
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("base_runtime_spec: %w", err)
		}
		if err := oci.WithNamespacedCgroup()(ctx, client, c, s); err != nil {
			return nil, nil, nil, nil, err
		}
		return s, ctx, client, c, nil
	}
	s, err := oci.GenerateSpec(ctx, client, c)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return s, ctx, client, c, nil
}

// withoutDefaultSecurity drops the default spec's AppArmor profile,
// seccomp filter and rlimits: the request says which confinement the
// container gets, and Kubernetes sets no rlimits (containerd/cri#515).
func withoutDefaultSecurity(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
	if s.Process == nil {
		s.Process = &specs.Process{}
	}
	s.Process.ApparmorProfile = ""
	s.Process.Rlimits = nil
	if s.Linux != nil {
		s.Linux.Seccomp = nil
	}
	return nil
}

// withoutNamespace removes the namespace of type t (the container shares
// the host's).
func withoutNamespace(t specs.LinuxNamespaceType) oci.SpecOpts {
	return oci.WithHostNamespace(t)
}

// passthroughAnnotations returns the annotations whose keys match one of
// patterns (path.Match globs, as containerd's pod_annotations and
// container_annotations).
func passthroughAnnotations(annotations map[string]string, patterns []string) map[string]string {
	out := map[string]string{}
	for k, v := range annotations {
		for _, p := range patterns {
			if ok, _ := path.Match(p, k); ok {
				out[k] = v
				break
			}
		}
	}
	return out
}

// parseUserns checks a pod's or container's user namespace options and
// returns its id mappings: mode NODE has none, mode POD exactly one uid
// and one gid mapping (what containerd supports: the snapshot is
// remapped with one range), which must map container id 0.
func parseUserns(u *runtime.UserNamespace) (uids, gids []specs.LinuxIDMapping, err error) {
	if u == nil {
		return nil, nil, nil
	}
	conv := func(what string, ms []*runtime.IDMapping) ([]specs.LinuxIDMapping, error) {
		if len(ms) == 0 {
			return nil, nil
		}
		if len(ms) > 1 {
			return nil, fmt.Errorf("user namespace %s mappings: only one mapping line is supported, got %d: %w", what, len(ms), errdefs.ErrInvalidArgument)
		}
		m := ms[0]
		if m == nil {
			return nil, nil
		}
		if m.Length < 1 {
			return nil, fmt.Errorf("user namespace %s mapping: invalid length %d: %w", what, m.Length, errdefs.ErrInvalidArgument)
		}
		// The kernel refuses ranges past the largest id (4294967295 is
		// not an id).
		if uint64(m.ContainerId)+uint64(m.Length) > 1<<32-1 || uint64(m.HostId)+uint64(m.Length) > 1<<32-1 {
			return nil, fmt.Errorf("user namespace %s mapping %d:%d:%d: the range runs past the largest id: %w", what, m.ContainerId, m.HostId, m.Length, errdefs.ErrInvalidArgument)
		}
		// The runtime starts the container's process as root of the
		// namespace: a namespace without a root cannot run it.
		if m.ContainerId != 0 {
			return nil, fmt.Errorf("user namespace %s mapping %d:%d:%d does not map container id 0: %w", what, m.ContainerId, m.HostId, m.Length, errdefs.ErrInvalidArgument)
		}
		return []specs.LinuxIDMapping{{ContainerID: m.ContainerId, HostID: m.HostId, Size: m.Length}}, nil
	}
	if uids, err = conv("uid", u.GetUids()); err != nil {
		return nil, nil, err
	}
	if gids, err = conv("gid", u.GetGids()); err != nil {
		return nil, nil, err
	}
	switch mode := u.GetMode(); mode {
	case runtime.NamespaceMode_NODE:
		if len(uids) != 0 || len(gids) != 0 {
			return nil, nil, fmt.Errorf("user namespace mode NODE takes no mappings, got %d uid and %d gid mappings: %w", len(uids), len(gids), errdefs.ErrInvalidArgument)
		}
	case runtime.NamespaceMode_POD:
		if len(uids) == 0 || len(gids) == 0 {
			return nil, nil, fmt.Errorf("user namespace mode POD needs uid and gid mappings: %w", errdefs.ErrInvalidArgument)
		}
	default:
		return nil, nil, fmt.Errorf("unsupported user namespace mode %s: %w", mode, errdefs.ErrInvalidArgument)
	}
	return uids, gids, nil
}

// sameUserns reports whether a container's user namespace options are
// the pod's: a container cannot have a user namespace of its own.
func sameUserns(a, b *runtime.UserNamespace) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if a.GetMode() != b.GetMode() {
		return false
	}
	au, ag, err1 := parseUserns(a)
	bu, bg, err2 := parseUserns(b)
	if err1 != nil || err2 != nil {
		return false
	}
	same := func(x, y []specs.LinuxIDMapping) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	return same(au, bu) && same(ag, bg)
}

// sysBindMount replaces sysfs for a container in a user namespace and the
// host's network namespace: mounting a sysfs there fails (EPERM, the
// network namespace belongs to the host's user namespace), so the host's
// /sys is bind mounted read-only instead.
func sysBindMount() specs.Mount {
	return specs.Mount{
		Source:      "/sys",
		Destination: "/sys",
		Type:        "bind",
		Options:     []string{"rbind", "rro", "nosuid", "nodev", "noexec"},
	}
}

// Host facts, read once; variables so tests can set them.
var (
	// cgroup2 reports whether /sys/fs/cgroup is the unified hierarchy.
	cgroup2 = sync.OnceValue(func() bool {
		var st unix.Statfs_t
		return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
	})
	// swapControllerAvailable reports whether memory+swap can be
	// limited: cgroup v1's memory.memsw files, or v2's memory.swap.max
	// (not in the root cgroup, so looked for in this process's).
	swapControllerAvailable = sync.OnceValue(func() bool {
		p := "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"
		if cgroup2() {
			self, err := os.ReadFile("/proc/self/cgroup")
			if err != nil {
				return false
			}
			for line := range strings.SplitSeq(string(self), "\n") {
				if rest, ok := strings.CutPrefix(line, "0::"); ok {
					p = filepath.Join("/sys/fs/cgroup", rest, "memory.swap.max")
				}
			}
		}
		_, err := os.Stat(p)
		return err == nil
	})
	// hugetlbControllerAvailable reports whether hugepage limits can be
	// set.
	hugetlbControllerAvailable = sync.OnceValue(func() bool {
		if cgroup2() {
			p, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
			return err == nil && strings.Contains(string(p), "hugetlb")
		}
		_, err := os.Stat("/sys/fs/cgroup/hugetlb")
		return err == nil
	})
	// currentOOMScoreAdj is the daemon's own oom_score_adj.
	currentOOMScoreAdj = func() (int, error) {
		p, err := os.ReadFile("/proc/self/oom_score_adj")
		if err != nil {
			return 0, fmt.Errorf("read the daemon's oom_score_adj: %w", err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(p)))
		if err != nil {
			return 0, fmt.Errorf("parse the daemon's oom_score_adj: %w", err)
		}
		return n, nil
	}
	// hostname is the host's name, a pod's when it has none.
	hostname = os.Hostname
	// allCapabilities are the capabilities "ALL" and privileged grant:
	// those the daemon has.
	allCapabilities = func() []string {
		caps, err := oci.CurrentCapabilities()
		if err != nil {
			return oci.KnownCapabilities()
		}
		return caps
	}
	// runningInUserNS reports whether the daemon runs in a user
	// namespace other than the host's (where ping_group_range cannot
	// name every group).
	runningInUserNS = sync.OnceValue(func() bool {
		p, err := os.ReadFile("/proc/self/uid_map")
		if err != nil {
			return false
		}
		f := strings.Fields(string(p))
		return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
	})
)

// OOMScoreAdj returns the oom_score_adj a container asking for adj gets:
// with restrict (restrict_oom_score_adj) no lower than the daemon's own,
// which an unprivileged daemon could not lower anyway.
func OOMScoreAdj(adj int, restrict bool) (int, error) {
	if !restrict {
		return adj, nil
	}
	cur, err := currentOOMScoreAdj()
	if err != nil {
		return adj, err
	}
	return max(adj, cur), nil
}

// withOOMScoreAdj sets the process's oom_score_adj.
func withOOMScoreAdj(adj int, restrict bool) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		adj, err := OOMScoreAdj(adj, restrict)
		if err != nil {
			return err
		}
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		s.Process.OOMScoreAdj = &adj
		return nil
	}
}

// userString is the user a process runs as from the CRI's run_as_*
// fields, as "user[:group]" for oci.WithUser; "" if none is set.
func userString(username string, uid, gid *runtime.Int64Value) (string, error) {
	var u string
	if uid != nil {
		u = strconv.FormatInt(uid.GetValue(), 10)
	}
	if username != "" {
		u = username
	}
	if u == "" {
		if gid != nil {
			return "", fmt.Errorf("run_as_group %d is set without run_as_user or run_as_username: %w", gid.GetValue(), errdefs.ErrInvalidArgument)
		}
		return "", nil
	}
	if gid != nil {
		u += ":" + strconv.FormatInt(gid.GetValue(), 10)
	}
	return u, nil
}

// withUser sets the process's user from userstr (oci.WithUser's forms),
// looking names up in the root filesystem. Without one (no rootfs given)
// numeric ids still work: a lone uid gets gid 0.
func withUser(userstr string, haveRootfs bool) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *specs.Spec) error {
		var err error
		if !haveRootfs {
			u, g, hasGroup := strings.Cut(userstr, ":")
			uid, err1 := strconv.ParseUint(u, 10, 31)
			gid, err2 := strconv.ParseUint(g, 10, 31)
			if !hasGroup {
				gid, err2 = 0, nil
			}
			if err1 != nil || err2 != nil {
				if strings.Trim(u+g, "-0123456789") == "" {
					return fmt.Errorf("user %q: id out of range (0-%d): %w", userstr, 1<<31-1, errdefs.ErrInvalidArgument)
				}
				return fmt.Errorf("user %q: looking names up needs the root filesystem: %w", userstr, errdefs.ErrInvalidArgument)
			}
			err = oci.WithUIDGID(uint32(uid), uint32(gid))(ctx, client, c, s)
		} else {
			err = oci.WithUser(userstr)(ctx, client, c, s)
		}
		if err != nil {
			if errors.Is(err, oci.ErrNoUsersFound) || errors.Is(err, oci.ErrNoGroupsFound) || strings.Contains(err.Error(), "invalid user") {
				return fmt.Errorf("user %q: %w: %w", userstr, err, errdefs.ErrInvalidArgument)
			}
			return fmt.Errorf("user %q: %w", userstr, err)
		}
		return nil
	}
}

// withSupplementalGroups adds gids to the process's supplementary
// groups, sorted and without duplicates (with the primary group, which
// oci's user options put there).
func withSupplementalGroups(groups []int64) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		u := &s.Process.User
		set := map[uint32]bool{}
		for _, g := range u.AdditionalGids {
			set[g] = true
		}
		for _, g := range groups {
			if g < 0 || g > 1<<31-1 {
				return fmt.Errorf("supplemental group %d out of range: %w", g, errdefs.ErrInvalidArgument)
			}
			set[uint32(g)] = true
		}
		u.AdditionalGids = u.AdditionalGids[:0]
		for g := range set {
			u.AdditionalGids = append(u.AdditionalGids, g)
		}
		slices.Sort(u.AdditionalGids)
		if len(u.AdditionalGids) == 0 {
			u.AdditionalGids = nil
		}
		return nil
	}
}

// withSysctls adds sysctls to the spec's.
func withSysctls(sysctls map[string]string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		if len(sysctls) == 0 {
			return nil
		}
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Sysctl == nil {
			s.Linux.Sysctl = map[string]string{}
		}
		for k, v := range sysctls {
			s.Linux.Sysctl[k] = v
		}
		return nil
	}
}
