package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/llitfkitfk/containerd/internal/privaterun"
	"github.com/llitfkitfk/containerd/sys"
)

// CRIIsolate is what the TestMain of the CRI tests calls first, as root.
// It is privaterun.Isolate with network, IPC and UTS namespaces of the
// run's own as well as a mount namespace (host-IPC and host-network pods
// share the run's, so that the shared memory segment critest makes and a
// hostname a pod sets stay in it): the pods' bridge, its subnet, the portmap
// plugin's iptables rules and the hostPorts critest maps (12000-12003),
// the host-network pods, the loopback registry and the daemon's stream
// server all live there, so that a run neither changes the host's network
// nor collides with another run's. In the private mount namespace /run is
// a tmpfs (the daemon's and runc's state, the pods' netns files) and so is
// /var/lib/cni, where CNI keeps its result cache.
//
// In the test binary as started, it runs the binary again in the new
// namespaces as a child subreaper, kills what the run left (the processes
// marked by env) and exits with the run's status. In the binary run
// again, it sets the namespaces up and returns.
func CRIIsolate(env string) error {
	if os.Getenv(env) != "" {
		if err := privaterun.Enter(); err != nil {
			return err
		}
		// A directory left on the host, empty: the mount over it holds
		// the run's cache.
		if err := os.MkdirAll("/var/lib/cni", 0o755); err != nil {
			return err
		}
		if err := syscall.Mount("tmpfs", "/var/lib/cni", "tmpfs", 0, "mode=755"); err != nil {
			return fmt.Errorf("mount private /var/lib/cni: %w", err)
		}
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			return fmt.Errorf("ip link set lo up: %v: %s", err, out)
		}
		return nil
	}
	mark := fmt.Sprintf("%s=%d", env, os.Getpid())
	if err := sys.SetSubreaper(); err == nil {
		sys.StartReaper()
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), mark)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS}
	err := sys.RunManaged(cmd)
	// The daemons and their shims carry the mark. Containers do not:
	// the tests remove their pods (CRIDaemon.Stop); a run killed
	// mid-way may leave some running. Their cgroups are not swept: the
	// CRI's containerd namespace, k8s.io, is shared with other runs, so
	// Sweep gets a namespace that has no cgroups.
	privaterun.Sweep(mark, "cri-test-no-cgroups")
	var exit *exec.ExitError
	switch {
	case err == nil:
		os.Exit(0)
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		os.Exit(exit.ExitCode())
	}
	fmt.Fprintln(os.Stderr, "run in private namespaces:", err)
	os.Exit(1)
	return nil
}
