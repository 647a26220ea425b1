package oci

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/containerd/platforms"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/namespaces"
)

// WithDefaultSpec replaces the spec with the default one for the
// container; later options then change it.
func WithDefaultSpec() SpecOpts {
	return func(ctx context.Context, _ Client, c *containers.Container, s *Spec) error {
		return populateDefaultSpec(ctx, s, c.ID)
	}
}

// WithDefaultSpecForPlatform is WithDefaultSpec for a platform given as
// ctr's --platform is ("" for this host's); only Linux specs are made.
func WithDefaultSpecForPlatform(platform string) SpecOpts {
	return func(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
		if platform != "" {
			p, err := platforms.Parse(platform)
			if err != nil {
				return err
			}
			if p.OS != "linux" {
				return fmt.Errorf("no default spec for platform %s: only linux is supported", platform)
			}
		}
		return WithDefaultSpec()(ctx, client, c, s)
	}
}

// WithSpecFromBytes replaces the spec with the JSON spec p.
func WithSpecFromBytes(p []byte) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		var n Spec
		if err := json.Unmarshal(p, &n); err != nil {
			return fmt.Errorf("decode spec (OCI runtime spec v%s): %w", specs.Version, err)
		}
		*s = n
		return nil
	}
}

// WithSpecFromFile replaces the spec with the JSON spec in filename.
func WithSpecFromFile(filename string) SpecOpts {
	return func(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
		p, err := os.ReadFile(filename)
		if err != nil {
			return fmt.Errorf("read spec file: %w", err)
		}
		if err := WithSpecFromBytes(p)(ctx, client, c, s); err != nil {
			return fmt.Errorf("%s: %w", filename, err)
		}
		return nil
	}
}

// WithProcessArgs replaces the process's args.
func WithProcessArgs(args ...string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setProcess(s)
		s.Process.Args = args
		s.Process.CommandLine = ""
		return nil
	}
}

// WithProcessCwd sets the process's working directory.
func WithProcessCwd(cwd string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setProcess(s)
		s.Process.Cwd = cwd
		return nil
	}
}

// WithEnv merges env ("KEY=value"; "KEY" alone removes KEY) into the
// process's environment.
func WithEnv(env []string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		if len(env) == 0 {
			return nil
		}
		setProcess(s)
		s.Process.Env = MergeEnv(s.Process.Env, env)
		return nil
	}
}

// WithEnvFile merges the variables of path, one "KEY=value" a line, as
// WithEnv does. Blank lines and lines starting with # are skipped.
func WithEnvFile(path string) SpecOpts {
	return func(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("env file: %w", err)
		}
		defer f.Close()
		var env []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			env = append(env, line)
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("env file %s: %w", path, err)
		}
		return WithEnv(env)(ctx, client, c, s)
	}
}

// WithDefaultPathEnv sets PATH to the default one.
func WithDefaultPathEnv(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
	setProcess(s)
	s.Process.Env = MergeEnv(s.Process.Env, []string{DefaultPathEnv})
	return nil
}

// MergeEnv returns env with each of overrides applied in order:
// "KEY=value" replaces KEY where it is (or is appended), "KEY" alone
// removes it. env is not modified.
func MergeEnv(env, overrides []string) []string {
	out := make([]string, 0, len(env)+len(overrides))
	at := make(map[string]int, len(env)+len(overrides))
	for _, e := range env {
		k, _, _ := strings.Cut(e, "=")
		if i, ok := at[k]; ok {
			// A key twice in env keeps its first place and its last
			// value, so that an override or removal finds one entry.
			out[i] = e
			continue
		}
		at[k] = len(out)
		out = append(out, e)
	}
	removed := false
	for _, e := range overrides {
		k, _, set := strings.Cut(e, "=")
		i, ok := at[k]
		switch {
		case !set && ok:
			out[i], removed = "", true
			delete(at, k)
		case !set:
		case ok:
			out[i] = e
		default:
			at[k] = len(out)
			out = append(out, e)
		}
	}
	if removed {
		// Only removals leave "" behind: a set entry always has "=".
		kept := out[:0]
		for _, e := range out {
			if e != "" {
				kept = append(kept, e)
			}
		}
		out = kept
	}
	return out
}

// WithTTY gives the process a terminal (and TERM=xterm, as containerd
// does).
func WithTTY(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
	setProcess(s)
	s.Process.Terminal = true
	s.Process.Env = MergeEnv(s.Process.Env, []string{"TERM=xterm"})
	return nil
}

// WithTTYSize sets the terminal's initial size.
func WithTTYSize(width, height int) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setProcess(s)
		s.Process.ConsoleSize = &specs.Box{Width: uint(width), Height: uint(height)}
		return nil
	}
}

// WithHostname sets the container's hostname.
func WithHostname(name string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		s.Hostname = name
		return nil
	}
}

// WithDomainname sets the container's NIS domain name.
func WithDomainname(name string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		s.Domainname = name
		return nil
	}
}

// WithMounts appends mounts, replacing any at the same destination.
func WithMounts(mounts []specs.Mount) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		for _, m := range mounts {
			dest := filepath.Clean(m.Destination)
			kept := s.Mounts[:0]
			for _, old := range s.Mounts {
				if filepath.Clean(old.Destination) != dest {
					kept = append(kept, old)
				}
			}
			s.Mounts = append(kept, m)
		}
		return nil
	}
}

// WithoutMounts removes the mounts at the destinations dests.
func WithoutMounts(dests ...string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		var kept []specs.Mount
		for _, m := range s.Mounts {
			drop := false
			for _, d := range dests {
				if filepath.Clean(m.Destination) == filepath.Clean(d) {
					drop = true
				}
			}
			if !drop {
				kept = append(kept, m)
			}
		}
		s.Mounts = kept
		return nil
	}
}

// WithoutRunMount removes the default tmpfs on /run.
func WithoutRunMount(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
	return WithoutMounts("/run")(ctx, client, c, s)
}

func withHostFile(name string) SpecOpts {
	return WithMounts([]specs.Mount{{
		Destination: name,
		Type:        "bind",
		Source:      name,
		Options:     []string{"rbind", "ro"},
	}})
}

// WithHostHostsFile bind-mounts the host's /etc/hosts.
func WithHostHostsFile(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
	return withHostFile("/etc/hosts")(ctx, client, c, s)
}

// WithHostResolvconf bind-mounts the host's /etc/resolv.conf.
func WithHostResolvconf(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
	return withHostFile("/etc/resolv.conf")(ctx, client, c, s)
}

// WithHostLocaltime bind-mounts the host's /etc/localtime.
func WithHostLocaltime(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
	return withHostFile("/etc/localtime")(ctx, client, c, s)
}

// WithHostNamespace removes namespace ns, so the container shares the
// host's.
func WithHostNamespace(ns specs.LinuxNamespaceType) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setLinux(s)
		s.Linux.Namespaces = removeNamespace(s.Linux.Namespaces, ns)
		return nil
	}
}

func removeNamespace(nss []specs.LinuxNamespace, typ specs.LinuxNamespaceType) []specs.LinuxNamespace {
	var kept []specs.LinuxNamespace
	for _, n := range nss {
		if n.Type != typ {
			kept = append(kept, n)
		}
	}
	return kept
}

// WithLinuxNamespace sets namespace ns (a new one, or the one at
// ns.Path), replacing any of its type.
func WithLinuxNamespace(ns specs.LinuxNamespace) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setLinux(s)
		for i, n := range s.Linux.Namespaces {
			if n.Type == ns.Type {
				s.Linux.Namespaces[i] = ns
				return nil
			}
		}
		s.Linux.Namespaces = append(s.Linux.Namespaces, ns)
		return nil
	}
}

// WithUserNamespace gives the container its own user namespace with these
// id mappings (added to any already set).
func WithUserNamespace(uidMap, gidMap []specs.LinuxIDMapping) SpecOpts {
	return func(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
		setLinux(s)
		has := false
		for _, n := range s.Linux.Namespaces {
			has = has || n.Type == specs.UserNamespace
		}
		if !has {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		}
		s.Linux.UIDMappings = append(s.Linux.UIDMappings, uidMap...)
		s.Linux.GIDMappings = append(s.Linux.GIDMappings, gidMap...)
		return nil
	}
}

// WithNoNewPrivileges keeps the process from gaining privileges (setuid
// binaries, file capabilities).
func WithNoNewPrivileges(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
	setProcess(s)
	s.Process.NoNewPrivileges = true
	return nil
}

// WithNewPrivileges lets the process gain privileges through setuid
// binaries and file capabilities.
func WithNewPrivileges(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
	setProcess(s)
	s.Process.NoNewPrivileges = false
	return nil
}

// WithRootFSPath sets the root filesystem's path (relative to the bundle,
// or absolute for a root filesystem the caller manages).
func WithRootFSPath(path string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setRoot(s)
		s.Root.Path = path
		return nil
	}
}

// WithRootFSReadonly makes the root filesystem read-only.
func WithRootFSReadonly() SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setRoot(s)
		s.Root.Readonly = true
		return nil
	}
}

// WithAnnotations sets annotations, replacing those of the same keys.
func WithAnnotations(annotations map[string]string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		if len(annotations) == 0 {
			return nil
		}
		if s.Annotations == nil {
			s.Annotations = make(map[string]string, len(annotations))
		}
		maps.Copy(s.Annotations, annotations)
		return nil
	}
}

// WithCgroup sets the container's cgroup path.
func WithCgroup(path string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setLinux(s)
		s.Linux.CgroupsPath = path
		return nil
	}
}

// WithNamespacedCgroup sets the cgroup path to /<namespace>/<id>, the
// default.
func WithNamespacedCgroup() SpecOpts {
	return func(ctx context.Context, _ Client, c *containers.Container, s *Spec) error {
		ns, err := namespaces.NamespaceRequired(ctx)
		if err != nil {
			return err
		}
		setLinux(s)
		s.Linux.CgroupsPath = "/" + ns + "/" + c.ID
		return nil
	}
}

// WithMaskedPaths replaces the paths hidden from the container.
func WithMaskedPaths(paths []string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setLinux(s)
		s.Linux.MaskedPaths = paths
		return nil
	}
}

// WithReadonlyPaths replaces the paths the container sees read-only.
func WithReadonlyPaths(paths []string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setLinux(s)
		s.Linux.ReadonlyPaths = paths
		return nil
	}
}

// withWritable turns "ro" into "rw" in the options of the mounts of type
// typ.
func withWritable(typ string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		for _, m := range s.Mounts {
			if m.Type != typ {
				continue
			}
			for i, o := range m.Options {
				if o == "ro" {
					m.Options[i] = "rw"
				}
			}
		}
		return nil
	}
}

// WithWriteableSysfs makes sysfs mounts writable.
func WithWriteableSysfs(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
	return withWritable("sysfs")(ctx, client, c, s)
}

// WithWriteableCgroupfs makes cgroup mounts writable.
func WithWriteableCgroupfs(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
	return withWritable("cgroup")(ctx, client, c, s)
}

// WithSelinuxLabel sets the process's SELinux label.
func WithSelinuxLabel(label string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setProcess(s)
		s.Process.SelinuxLabel = label
		return nil
	}
}

// WithApparmorProfile sets the process's AppArmor profile.
func WithApparmorProfile(profile string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setProcess(s)
		s.Process.ApparmorProfile = profile
		return nil
	}
}

// WithSeccompUnconfined removes the seccomp profile.
func WithSeccompUnconfined(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
	setLinux(s)
	s.Linux.Seccomp = nil
	return nil
}

// WithPrivileged gives the container every capability and device, and
// unmasks /proc and /sys.
func WithPrivileged(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
	return Compose(
		WithPrivilegedWithoutHostDevices,
		WithHostDevices,
		WithAllDevicesAllowed,
	)(ctx, client, c, s)
}

// WithPrivilegedWithoutHostDevices is WithPrivileged without the host's
// devices (ctr run --privileged-without-host-devices): every capability
// this process has, /proc and /sys unmasked and writable, no SELinux,
// AppArmor or seccomp confinement.
func WithPrivilegedWithoutHostDevices(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
	return Compose(
		WithAllCurrentCapabilities,
		WithMaskedPaths(nil),
		WithReadonlyPaths(nil),
		WithWriteableSysfs,
		WithWriteableCgroupfs,
		WithSelinuxLabel(""),
		WithApparmorProfile(""),
		WithSeccompUnconfined,
	)(ctx, client, c, s)
}
