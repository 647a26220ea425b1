//go:build integration

package integration

import (
	"fmt"
	"os"

	"github.com/llitfkitfk/containerd/internal/privaterun"
)

// As root, the test binary re-executes itself in a mount namespace of its
// own with a tmpfs on /run, so that tests running containers never touch
// the host's /run/containerd (see privaterun.Isolate).
const privateRunEnv = "CONTAINERD_INTEGRATION_PRIVATE_RUN"

// privateRun says the tests run with a private /run, which the tests that
// run containers need.
var privateRun bool

// isolate, in TestMain, runs the tests in a private mount namespace with
// their own containerd namespace, where they are run as root.
func isolate() {
	if os.Getenv(privateRunEnv) == "" && os.Geteuid() != 0 {
		return
	}
	ns, err := privaterun.Isolate(privateRunEnv, "integration-run")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	runNamespace = ns
	privateRun = true
}
