package main

import (
	"os"

	"github.com/llitfkitfk/containerd/internal/privaterun"
)

// So that the run workloads never touch the host's /run/containerd, the
// bench re-executes itself, as root, in a mount namespace of its own with
// a tmpfs on /run (see package privaterun).
const privateRunEnv = "CONTAINERD_BENCH_PRIVATE_RUN"

// privateRun reports whether /run is the bench's own.
var privateRun bool

// isolate runs the bench again in a private mount namespace and exits with
// its status. It returns only where isolation is not possible or already
// done.
func isolate() error {
	if os.Getenv(privateRunEnv) != "" {
		if err := privaterun.Enter(); err != nil {
			return err
		}
		privateRun = true
		return nil
	}
	if os.Geteuid() != 0 {
		return nil
	}
	code, err := privaterun.Reexec(privateRunEnv + "=1")
	if err != nil {
		return err
	}
	os.Exit(code)
	return nil
}
