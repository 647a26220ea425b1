package testutil

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/llitfkitfk/containerd/mount"
)

// Peers are containerd's own daemons (the distribution's 1.6, 2.x built by
// script/containerd2.sh) that tests run on temporary paths, to show that a
// shim of this project works under them. What follows starts one, finds
// the shims it started, and cleans up after both.

// PeerConfigText is a config for containerd's daemon of config format
// version (2 for containerd 1.x, 3 for 2.x) that keeps everything under
// p's paths and leaves out the plugins that only slow its start or reach
// outside them: CRI and its pieces, NRI, and the /opt/containerd plugin
// directory, which is put under p.Root.
func PeerConfigText(p DaemonPaths, version int) string {
	disabled := []string{"io.containerd.grpc.v1.cri"}
	if version >= 3 {
		disabled = append(disabled,
			"io.containerd.cri.v1.images",
			"io.containerd.cri.v1.runtime",
			"io.containerd.podsandbox.controller.v1.podsandbox",
			"io.containerd.nri.v1.nri",
		)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "version = %d\nroot = %q\nstate = %q\n", version, p.Root, p.State)
	fmt.Fprintf(&b, "disabled_plugins = [%s]\n", quoteList(disabled))
	fmt.Fprintf(&b, "\n[grpc]\n  address = %q\n", p.Address)
	fmt.Fprintf(&b, "\n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = %q\n", filepath.Join(p.Root, "opt"))
	return b.String()
}

func quoteList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = strconv.Quote(s)
	}
	return strings.Join(quoted, ", ")
}

// ShimDir makes dir hold one entry, containerd-shim-runc-v2, a link to
// shim, for a daemon's PATH (and working directory, where containerd 2.x
// looks first) to find that shim before any other.
func ShimDir(dir, shim string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Symlink(shim, filepath.Join(dir, "containerd-shim-runc-v2"))
}

// WaitSocket waits until something answers on the unix socket at path,
// failing early if exited is closed.
func WaitSocket(path string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("daemon exited before it served %s", path)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing answers on %s after %v", path, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ShimPids returns the pids of the shims serving the daemon at address:
// shims are started, and re-execute themselves, with `-address ADDRESS`.
func ShimPids(address string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(data, "\x00")), "\x00")
		if !strings.Contains(filepath.Base(args[0]), "shim") {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-address" && args[i+1] == address {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// Exe returns the binary pid runs, as the kernel resolved it.
func Exe(pid int) string {
	exe, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe"))
	return exe
}

// KillShims kills the shims of the daemon at address with SIGKILL, each by
// its pid, and returns how many there were.
func KillShims(address string) int {
	pids := ShimPids(address)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return len(pids)
}

// MountsUnder returns the mount points at or under dir, deepest first, as
// this process's mount namespace has them.
func MountsUnder(dir string) []string {
	mounts, _ := mount.PointsUnder(dir)
	slices.Reverse(mounts)
	return mounts
}

// UnmountUnder detaches every mount at or under dir and returns what it
// found mounted there.
func UnmountUnder(dir string) []string {
	mounts := MountsUnder(dir)
	for _, mp := range mounts {
		syscall.Unmount(mp, syscall.MNT_DETACH)
	}
	return mounts
}

// CommandOutput runs cmd and returns its stdout, its stderr and its exit
// status; err is set only when it could not run or was killed by timeout.
func CommandOutput(cmd *exec.Cmd) (stdout, stderr string, code int, err error) {
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok && exit.ExitCode() >= 0 {
		return out.String(), errb.String(), exit.ExitCode(), nil
	}
	if err != nil {
		return out.String(), errb.String(), -1, err
	}
	return out.String(), errb.String(), 0, nil
}
