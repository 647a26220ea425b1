// Package privaterun runs a program again in a mount namespace of its own,
// with a tmpfs on /run. ctr keeps its fifos in /run/containerd/fifo, the
// runc shim its sockets in /run/containerd/s and runc its state in
// /run/containerd/runc, whatever the daemon's own paths; the tests and the
// bench that run containers use it so that they never touch the host's.
// Daemons, shims and containers inherit the namespace.
package privaterun

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/llitfkitfk/containerd/sys"
)

// Reexec runs this program again, with its arguments, in a new mount
// namespace, and returns its exit status. mark, NAME=VALUE, is added to
// its environment: the program tells by it that it runs in the namespace,
// and every process it starts inherits it, so that Sweep can find what a
// failed run left behind.
func Reexec(mark string) (int, error) {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), mark)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	// Managed, so that a reaper the caller runs as a child subreaper
	// leaves its exit status alone.
	err := sys.RunManaged(cmd)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		return exit.ExitCode(), nil
	}
	return 1, fmt.Errorf("run in a private mount namespace: %w", err)
}

// Isolate is what the TestMain of tests that run containers calls first,
// as root. In the test binary as started, it runs the binary again in a
// private mount namespace (Reexec, marked by env=<its pid>), as a child
// subreaper that reaps the shims the tests' daemons leave, then sweeps
// what the run left behind (Sweep) and exits with the run's status: there
// it does not return. In the binary run again, it mounts the private /run
// (Enter) and returns the containerd namespace for the run's containers:
// prefix-<pid of the outer binary>, the run's own, so that concurrent runs
// neither share cgroups nor sweep each other's.
func Isolate(env, prefix string) (namespace string, err error) {
	if id := os.Getenv(env); id != "" {
		if err := Enter(); err != nil {
			return "", err
		}
		return prefix + "-" + id, nil
	}
	mark := fmt.Sprintf("%s=%d", env, os.Getpid())
	namespace = fmt.Sprintf("%s-%d", prefix, os.Getpid())
	if err := sys.SetSubreaper(); err == nil {
		sys.StartReaper()
	}
	code, err := Reexec(mark)
	Sweep(mark, namespace)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
	panic("unreachable")
}

// Enter, in the namespace Reexec made, makes every mount private, so that
// nothing mounted here reaches the host's, and mounts the tmpfs on /run.
func Enter() error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := syscall.Mount("tmpfs", "/run", "tmpfs", 0, "mode=755"); err != nil {
		return fmt.Errorf("mount private /run: %w", err)
	}
	return nil
}

// Sweep kills what a run that died (a timeout, say) left running: the
// processes whose environment holds mark, and those in the cgroups of
// containerd namespace ns (runc's /<ns>/<id>). Then it removes those
// cgroups and their parents.
func Sweep(mark, ns string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range procs {
		env, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(append(env, 0), []byte(mark+"\x00")) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/" + ns + "/*/cgroup.procs")
	v2, _ := filepath.Glob("/sys/fs/cgroup/" + ns + "/*/cgroup.procs")
	cgroups = append(cgroups, v2...)
	for _, procs := range cgroups {
		data, _ := os.ReadFile(procs)
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for _, procs := range cgroups {
		// A killed process leaves its cgroup a moment later.
		for i := 0; i < 50 && os.Remove(filepath.Dir(procs)) != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	RemoveCgroupParents(ns)
}

// RemoveCgroupParents removes the cgroup directories runc makes for
// namespace ns as parents of /<ns>/<id>; they are empty once every
// container of ns is deleted.
func RemoveCgroupParents(ns string) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + ns)
	for _, dir := range append(dirs, "/sys/fs/cgroup/"+ns) {
		os.Remove(dir)
	}
}
