package spec

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/oci"
)

// mountInfo is what propagation checks need of a mountinfo entry.
type mountInfo struct {
	Mountpoint string
	// Optional are the optional fields: "shared:N", "master:N"...
	Optional []string
	// SuperOptions are the filesystem's options (cgroup2's nsdelegate).
	SuperOptions []string
}

// lookupMount finds the mount that holds path (symbolic links resolved
// already), from this process's mountinfo. A variable for tests.
var lookupMount = func(path string) (mountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return mountInfo{}, err
	}
	defer f.Close()
	return findMountInfo(f, path)
}

// findMountInfo finds the mount that holds path in a mountinfo file.
func findMountInfo(r io.Reader, path string) (mountInfo, error) {
	var best mountInfo
	found := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options optional... - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f := strings.Fields(pre)
		if len(f) < 6 {
			continue
		}
		mp := unescapeOctal(f[4])
		if !underPath(path, mp) {
			continue
		}
		// Later entries are mounted over earlier ones: the last
		// longest match is the one that holds path.
		if found && len(mp) < len(best.Mountpoint) {
			continue
		}
		m := mountInfo{Mountpoint: mp, Optional: f[6:]}
		if pf := strings.Fields(post); len(pf) >= 3 {
			m.SuperOptions = strings.Split(pf[2], ",")
		}
		best, found = m, true
	}
	if err := sc.Err(); err != nil {
		return mountInfo{}, err
	}
	if !found {
		return mountInfo{}, fmt.Errorf("no mount holds %s", path)
	}
	return best, nil
}

func underPath(p, dir string) bool {
	if dir == "/" {
		return true
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// unescapeOctal undoes mountinfo's \ooo escapes (of space, tab, newline
// and backslash).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			o := s[i+1 : i+4]
			if len(o) == 3 && strings.Trim(o, "01234567") == "" {
				b.WriteByte((o[0]-'0')<<6 | (o[1]-'0')<<3 | (o[2] - '0'))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func hasOptional(m mountInfo, prefixes ...string) bool {
	for _, o := range m.Optional {
		for _, p := range prefixes {
			if strings.HasPrefix(o, p) {
				return true
			}
		}
	}
	return false
}

// inMounts reports whether a CRI mount has destination dst.
func inMounts(dst string, mounts []*runtime.Mount) bool {
	for _, m := range mounts {
		if filepath.Clean(m.GetContainerPath()) == filepath.Clean(dst) {
			return true
		}
	}
	return false
}

// sandboxFileMounts are the sandbox's files the container gets, unless
// it mounts something there itself: /etc/hostname, /etc/hosts and
// /etc/resolv.conf (read-only with a read-only root filesystem) and
// /dev/shm (the host's with host IPC). A file missing on the host is
// skipped, as containerd does for sandboxes that do not keep one.
func sandboxFileMounts(in ContainerInput) []*runtime.Mount {
	sc := in.Config.GetLinux().GetSecurityContext()
	userns := sc.GetNamespaceOptions().GetUsernsOptions()
	var out []*runtime.Mount
	add := func(dst, src string, ro, idmap bool) {
		if src == "" || inMounts(dst, in.Config.GetMounts()) {
			return
		}
		if _, err := os.Stat(src); err != nil {
			return
		}
		m := &runtime.Mount{ContainerPath: dst, HostPath: src, Readonly: ro}
		if idmap && userns != nil {
			m.UidMappings, m.GidMappings = userns.GetUids(), userns.GetGids()
		}
		out = append(out, m)
	}
	ro := sc.GetReadonlyRootfs()
	add(EtcHostname, in.HostnamePath, ro, true)
	add(EtcHosts, in.HostsPath, ro, true)
	add(ResolvConf, in.ResolvPath, ro, true)
	shm := in.ShmPath
	if sc.GetNamespaceOptions().GetIpc() == runtime.NamespaceMode_NODE {
		shm = DevShm
	}
	// No id mapping for /dev/shm: tmpfs supports idmapped mounts only
	// since Linux 6.3, and an empty tmpfs needs none.
	add(DevShm, shm, false, false)
	return out
}

// imageVolumeMounts are the image's VOLUMEs the CRI mounts do not cover,
// each a directory under in.VolumesDir named by its destination.
func imageVolumeMounts(in ContainerInput) []*runtime.Mount {
	if in.VolumesDir == "" || (in.CRI != nil && in.CRI.IgnoreImageDefinedVolumes) || len(in.Image.Volumes) == 0 {
		return nil
	}
	userns := in.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	dsts := make([]string, 0, len(in.Image.Volumes))
	for dst := range in.Image.Volumes {
		dsts = append(dsts, dst)
	}
	slices.Sort(dsts) // a stable spec for the same request
	var out []*runtime.Mount
	for _, dst := range dsts {
		if !strings.HasPrefix(dst, "/") {
			dst = "/" + dst
		}
		dst = filepath.Clean(dst)
		if inMounts(dst, in.Config.GetMounts()) {
			continue
		}
		sum := sha256.Sum256([]byte(dst))
		m := &runtime.Mount{
			ContainerPath: dst,
			HostPath:      filepath.Join(in.VolumesDir, hex.EncodeToString(sum[:16])),
		}
		if userns != nil {
			m.UidMappings, m.GidMappings = userns.GetUids(), userns.GetGids()
		}
		out = append(out, m)
	}
	return out
}

// withCRIMounts adds the container's mounts: the CRI mounts, then extra
// ones (sandbox files, image volumes) at destinations the CRI mounts do
// not take. The cgroup filesystem is mounted at /sys/fs/cgroup. Default
// mounts at a destination the container mounts over are dropped, and all
// under /dev if it mounts /dev. Host paths that do not exist are made
// (directories), as kubelet's hostPath volumes expect.
func withCRIMounts(config *runtime.ContainerConfig, extra []*runtime.Mount, rro, cgroupWritable bool) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		mounts := slices.Clone(config.GetMounts())
		for _, e := range extra {
			if !inMounts(e.GetContainerPath(), config.GetMounts()) {
				mounts = append(mounts, e)
			}
		}
		// Shallower destinations first, so that a mount is not hidden by
		// one of its parent directory.
		depth := func(m *runtime.Mount) int {
			return strings.Count(filepath.Clean(m.GetContainerPath()), "/")
		}
		slices.SortStableFunc(mounts, func(a, b *runtime.Mount) int { return depth(a) - depth(b) })

		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		mode := "ro"
		if cgroupWritable {
			mode = "rw"
		}
		cgroupOpts := []string{"nosuid", "noexec", "nodev", "relatime", mode}
		cgroupNS := slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.CgroupNamespace })
		if !cgroupNS && cgroup2() {
			// Without its own cgroup namespace the container's cgroup2
			// mount is the host's superblock: options it lacks would be
			// taken away from the host's.
			if mi, err := lookupMount("/sys/fs/cgroup"); err == nil {
				for _, o := range mi.SuperOptions {
					if o == "nsdelegate" || o == "memory_recursiveprot" {
						cgroupOpts = append(cgroupOpts, o)
					}
				}
			}
		}
		s.Mounts = append(s.Mounts, specs.Mount{Source: "cgroup", Destination: "/sys/fs/cgroup", Type: "cgroup", Options: cgroupOpts})

		taken := map[string]bool{}
		for _, m := range mounts {
			taken[filepath.Clean(m.GetContainerPath())] = true
		}
		kept := s.Mounts[:0]
		for _, m := range s.Mounts {
			dst := filepath.Clean(m.Destination)
			if taken[dst] || (taken["/dev"] && strings.HasPrefix(dst, "/dev/")) {
				continue
			}
			kept = append(kept, m)
		}
		s.Mounts = kept

		for _, m := range mounts {
			om, err := ociMount(m, s, rro)
			if err != nil {
				return err
			}
			s.Mounts = append(s.Mounts, om)
		}
		return nil
	}
}

// ociMount converts one CRI mount to a bind mount.
func ociMount(m *runtime.Mount, s *specs.Spec, rro bool) (specs.Mount, error) {
	dst, src := m.GetContainerPath(), m.GetHostPath()
	image := m.GetImage() != nil
	if image {
		// An image volume: the runtime service has mounted the image on
		// the host and set host_path to it (or to its sub-path); from
		// here on it is a read-only bind mount.
		if src == "" {
			return specs.Mount{}, fmt.Errorf("mount %s: image volume %q is not mounted on the host: %w", dst, m.GetImage().GetImage(), errdefs.ErrFailedPrecondition)
		}
		if !m.GetReadonly() {
			return specs.Mount{}, fmt.Errorf("mount %s: image volume %q must be read-only: %w", dst, m.GetImage().GetImage(), errdefs.ErrInvalidArgument)
		}
	}
	if !filepath.IsAbs(dst) {
		return specs.Mount{}, fmt.Errorf("mount %q -> %q: container path must be absolute: %w", src, dst, errdefs.ErrInvalidArgument)
	}
	if !filepath.IsAbs(src) {
		return specs.Mount{}, fmt.Errorf("mount %q -> %q: host path must be absolute: %w", src, dst, errdefs.ErrInvalidArgument)
	}
	if _, err := os.Stat(src); err != nil {
		if image || !errors.Is(err, os.ErrNotExist) {
			return specs.Mount{}, fmt.Errorf("mount %s: %w", src, err)
		}
		if err := os.MkdirAll(src, 0o755); err != nil {
			return specs.Mount{}, fmt.Errorf("mount %s: make the host path: %w", src, err)
		}
	}
	resolved, err := filepath.EvalSymlinks(src)
	if err != nil {
		return specs.Mount{}, fmt.Errorf("mount %s: resolve symbolic links: %w", src, err)
	}
	src = resolved

	opts := []string{"rbind"}
	switch m.GetPropagation() {
	case runtime.MountPropagation_PROPAGATION_PRIVATE:
		// runc's root propagation is rprivate already.
		opts = append(opts, "rprivate")
	case runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		mi, err := lookupMount(src)
		if err != nil {
			return specs.Mount{}, fmt.Errorf("mount %s: %w", src, err)
		}
		if !hasOptional(mi, "shared:") {
			return specs.Mount{}, fmt.Errorf("mount %s: bidirectional propagation needs a shared mount, and %s is not shared: %w", src, mi.Mountpoint, errdefs.ErrInvalidArgument)
		}
		opts = append(opts, "rshared")
		s.Linux.RootfsPropagation = "rshared"
	case runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		mi, err := lookupMount(src)
		if err != nil {
			return specs.Mount{}, fmt.Errorf("mount %s: %w", src, err)
		}
		if !hasOptional(mi, "shared:", "master:") {
			return specs.Mount{}, fmt.Errorf("mount %s: host-to-container propagation needs a shared or slave mount, and %s is neither: %w", src, mi.Mountpoint, errdefs.ErrInvalidArgument)
		}
		opts = append(opts, "rslave")
		if s.Linux.RootfsPropagation != "rshared" && s.Linux.RootfsPropagation != "rslave" {
			s.Linux.RootfsPropagation = "rslave"
		}
	default:
		// An unknown mode is private, as containerd has it.
		opts = append(opts, "rprivate")
	}

	// A read-only root filesystem does not make the mounts read-only
	// (unlike docker), as in containerd.
	switch {
	case m.GetReadonly() && m.GetRecursiveReadOnly():
		if !rro {
			return specs.Mount{}, fmt.Errorf("mount %s: the runtime does not support recursive read-only mounts: %w", src, errdefs.ErrInvalidArgument)
		}
		if m.GetPropagation() != runtime.MountPropagation_PROPAGATION_PRIVATE {
			return specs.Mount{}, fmt.Errorf("mount %s: a recursive read-only mount needs private propagation, not %s: %w", src, m.GetPropagation(), errdefs.ErrInvalidArgument)
		}
		opts = append(opts, "rro")
	case m.GetReadonly():
		opts = append(opts, "ro")
	case m.GetRecursiveReadOnly():
		return specs.Mount{}, fmt.Errorf("mount %s: recursive read-only conflicts with a writable mount: %w", src, errdefs.ErrInvalidArgument)
	default:
		opts = append(opts, "rw")
	}
	// selinux_relabel is ignored: this daemon has no SELinux support
	// (the config refuses enable_selinux on an SELinux host).

	conv := func(ms []*runtime.IDMapping) []specs.LinuxIDMapping {
		var out []specs.LinuxIDMapping
		for _, x := range ms {
			out = append(out, specs.LinuxIDMapping{ContainerID: x.GetContainerId(), HostID: x.GetHostId(), Size: x.GetLength()})
		}
		return out
	}
	return specs.Mount{
		Source:      src,
		Destination: dst,
		Type:        "bind",
		Options:     opts,
		UIDMappings: conv(m.GetUidMappings()),
		GIDMappings: conv(m.GetGidMappings()),
	}, nil
}
