//go:build integration

package integration

import (
	"bytes"
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

// ctr puts its fifos in /run/containerd/fifo, the shim its sockets in
// /run/containerd/s and runc its state in /run/containerd/runc, whatever
// the daemon's own paths. So that tests running containers never touch the
// host's, the test binary, as root, re-executes itself in a mount
// namespace of its own with a tmpfs on /run. Daemons, shims and containers
// all inherit it.
const privateRunEnv = "CONTAINERD_INTEGRATION_PRIVATE_RUN"

// privateRun says the tests run with a private /run, which the tests that
// run containers need.
var privateRun bool

// runIsolated runs the test binary again in a private mount namespace and
// returns its exit status, once what the run left behind is killed.
func runIsolated() int {
	// The run's mark is in the environment of every daemon and shim it
	// starts, so that what a failed run leaves running can be found.
	mark := fmt.Sprintf("%s=%d", privateRunEnv, os.Getpid())
	runNamespace = fmt.Sprintf("integration-run-%d", os.Getpid())
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), mark)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	// Shims outlive the daemons the tests kill; as a subreaper this
	// process inherits and reaps them, rather than leave zombies to init.
	if err := sys.SetSubreaper(); err == nil {
		sys.StartReaper()
	}
	err := sys.RunManaged(cmd)
	sweep(mark)
	if err != nil {
		if exit, ok := err.(*exec.ExitError); ok && exit.ExitCode() >= 0 {
			return exit.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "run tests in a private mount namespace:", err)
		return 1
	}
	return 0
}

// enterPrivateRun mounts the private /run, in the namespace runIsolated
// made. Its mounts are made private first, so that nothing mounted here
// propagates to the host's.
func enterPrivateRun() error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := syscall.Mount("tmpfs", "/run", "tmpfs", 0, "mode=755"); err != nil {
		return fmt.Errorf("mount private /run: %w", err)
	}
	runNamespace = "integration-run-" + os.Getenv(privateRunEnv)
	privateRun = true
	return nil
}

// sweep kills what the run left running, should a test have died before
// its cleanup: the daemons and shims carrying its mark, and the processes
// in the containers' cgroups, which are under the run's namespace. Then it
// removes those cgroups.
func sweep(mark string) {
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
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/" + runNamespace + "/*/cgroup.procs")
	v2, _ := filepath.Glob("/sys/fs/cgroup/" + runNamespace + "/*/cgroup.procs")
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
		for i := 0; i < 50 && os.Remove(filepath.Dir(procs)) != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	removeCgroupParents()
}

// removeCgroupParents removes the cgroup directories runc makes for the
// run's namespace, as parents of /<namespace>/<id>; they are empty once
// every container of the run is deleted.
func removeCgroupParents() {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + runNamespace)
	for _, dir := range append(dirs, "/sys/fs/cgroup/"+runNamespace) {
		os.Remove(dir)
	}
}
