package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// ctr keeps its fifos in /run/containerd/fifo and containerd's runc shim its
// sockets in /run/containerd/s, whatever the daemons' own paths. So that
// the run workload never touches the host's, the bench re-executes itself,
// as root, in a mount namespace of its own with a tmpfs on /run; daemons,
// shims and containers inherit it.
const privateRunEnv = "CONTAINERD_BENCH_PRIVATE_RUN"

// privateRun reports whether /run is the bench's own.
var privateRun bool

// isolate runs the bench again in a private mount namespace and exits with
// its status. It returns only where isolation is not possible or already
// done.
func isolate() error {
	if os.Getenv(privateRunEnv) != "" {
		if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("make mounts private: %w", err)
		}
		if err := syscall.Mount("tmpfs", "/run", "tmpfs", 0, "mode=755"); err != nil {
			return fmt.Errorf("mount private /run: %w", err)
		}
		privateRun = true
		return nil
	}
	if os.Geteuid() != 0 {
		return nil
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), privateRunEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		os.Exit(0)
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		os.Exit(exit.ExitCode())
	}
	return fmt.Errorf("run in a private mount namespace: %w", err)
}
