package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ShimEnv names the shim that tests run containers through: an absolute
// path. Unset, it is the project's own containerd-shim-runc-v2, built
// beside the daemon under test. `make test` runs the container tests a
// second time with the distribution's shim, as a compatibility pass.
const ShimEnv = "CONTAINERD_SHIM"

// ShimName is the binary a daemon runs for runtime io.containerd.runc.v2.
const ShimName = "containerd-shim-runc-v2"

// ShimUnderTest returns the shim the tests are to use: $CONTAINERD_SHIM,
// or ShimName beside daemonBinary, built there from the checkout at
// repoRoot if missing.
func ShimUnderTest(daemonBinary, repoRoot string) (string, error) {
	if p := os.Getenv(ShimEnv); p != "" {
		if !filepath.IsAbs(p) {
			return "", fmt.Errorf("$%s=%s: want an absolute path", ShimEnv, p)
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$%s: %w", ShimEnv, err)
		}
		return p, nil
	}
	p := filepath.Join(filepath.Dir(daemonBinary), ShimName)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	build := exec.Command("go", "build", "-o", p, "./cmd/"+ShimName)
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", ShimName, err, out)
	}
	return p, nil
}

// PutShimFirst makes shim the containerd-shim-runc-v2 that this process
// and the daemons it starts find first on PATH, by way of a symlink in a
// directory of its own under dir. Daemons look a runtime's shim up on
// PATH before they look beside their own binary, as containerd does.
func PutShimFirst(dir, shim string) error {
	bin := filepath.Join(dir, "shim-bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	link := filepath.Join(bin, ShimName)
	os.Remove(link)
	if err := os.Symlink(shim, link); err != nil {
		return err
	}
	return os.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}
