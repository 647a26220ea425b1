//go:build integration

package integration

import (
	"fmt"
	"os"

	"github.com/llitfkitfk/containerd/internal/privaterun"
	"github.com/llitfkitfk/containerd/sys"
)

// As root, the test binary re-executes itself in a mount namespace of its
// own with a tmpfs on /run, so that tests running containers never touch
// the host's /run/containerd (see package privaterun).
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
	// Shims outlive the daemons the tests kill; as a subreaper this
	// process inherits and reaps them, rather than leave zombies to init.
	if err := sys.SetSubreaper(); err == nil {
		sys.StartReaper()
	}
	code, err := privaterun.Reexec(mark)
	privaterun.Sweep(mark, runNamespace)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return code
}

// enterPrivateRun mounts the private /run, in the namespace runIsolated
// made.
func enterPrivateRun() error {
	if err := privaterun.Enter(); err != nil {
		return err
	}
	runNamespace = "integration-run-" + os.Getenv(privateRunEnv)
	privateRun = true
	return nil
}
