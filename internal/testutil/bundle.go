package testutil

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// HostBusybox is the static busybox the container tests run (Debian's
// busybox-static), as it needs no libraries inside the container.
const HostBusybox = "/bin/busybox"

// CanRunContainers says why tests cannot run containers here, "" if they
// can: they need root, runc on PATH and the host's static busybox.
func CanRunContainers() string {
	if os.Geteuid() != 0 {
		return "running containers needs root"
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return "runc is not installed"
	}
	if _, err := os.Stat(HostBusybox); err != nil {
		return fmt.Sprintf("no static busybox at %s (package busybox-static)", HostBusybox)
	}
	return ""
}

// NeedContainers skips the test unless it can run containers here.
func NeedContainers(t testing.TB) {
	t.Helper()
	if why := CanRunContainers(); why != "" {
		t.Skip(why)
	}
}

// BusyboxRootfs makes dir a root filesystem of the host's static busybox:
// /bin/busybox, a link in /bin for each of its applets, and the
// directories runc mounts onto. It runs busybox to list its applets, so
// a test that reaps children itself (a shim's) calls it first.
func BusyboxRootfs(dir string) error {
	bin := filepath.Join(dir, "bin")
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	src, err := os.Open(HostBusybox)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(bin, "busybox"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	out, err := exec.Command(HostBusybox, "--list").Output()
	if err != nil {
		return fmt.Errorf("%s --list: %w", HostBusybox, err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(bin, applet)); err != nil && !os.IsExist(err) {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
}

// ContainerSpec is a spec like `runc spec`'s default, running args with
// its rootfs at "rootfs" in the bundle: new pid, mount, ipc, uts and
// network namespaces, the default mounts, few capabilities.
func ContainerSpec(args ...string) *specs.Spec {
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args: args,
			Env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"},
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: "test",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			MaskedPaths:   []string{"/proc/kcore", "/proc/keys", "/sys/firmware"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
}

// WriteBundle writes spec as dir's config.json, making dir and its empty
// rootfs mount point.
func WriteBundle(t testing.TB, dir string, spec *specs.Spec) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "rootfs"), 0o711); err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}
