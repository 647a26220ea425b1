//go:build integration

// Package cri proves the daemon's CRI plugin with the Kubernetes tools
// themselves: crictl flows (crictl_test.go) and critest's conformance
// specs (critest_test.go, run by `make critest`). The daemon is ours
// ($CONTAINERD_BINARY, or bin/containerd), or containerd 2.x's with
// CRI_DAEMON=containerd2, the reference the harness is checked against.
// Everything runs as root in a mount and network namespace of the run's
// own (testutil.CRIIsolate); the images come from a loopback registry
// that hosts.toml mirrors put in place of registry.k8s.io, gcr.io and
// docker.io. `make cri-deps` builds the tools into bin/cri.
package cri

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/llitfkitfk/containerd/internal/testutil"
)

const isolateEnv = "CONTAINERD_CRI_TEST_NS"

var (
	// repoRoot is the checkout's top directory.
	repoRoot string
	// imagesDir holds the images' programs and the registry's storage.
	imagesDir string

	// registry serves every image the tests pull (testutil.CRIImages),
	// set up by the first test that starts a daemon (so that a run
	// whose -run selects no test here builds nothing).
	registry     *testutil.Registry
	registryErr  error
	registryOnce sync.Once
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "integration/cri: the CRI tests run pods, which needs root")
		os.Exit(1)
	}
	if err := testutil.CRIIsolate(isolateEnv); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(run(m))
}

// run runs the tests, then stops the registry if one started.
func run(m *testing.M) int {
	var err error
	if repoRoot, err = filepath.Abs("../.."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if imagesDir, err = os.MkdirTemp("", "cri-images"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(imagesDir)
	code := m.Run()
	if registry != nil {
		registry.Close()
	}
	return code
}

// serveImages builds the test images' programs and images under dir and
// pushes them to a registry of their own, served over TLS.
func serveImages(dir string) (*testutil.Registry, error) {
	progs, err := testutil.BuildCRIPrograms(repoRoot, filepath.Join(dir, "programs"))
	if err != nil {
		return nil, err
	}
	images, err := testutil.CRIImages(progs)
	if err != nil {
		return nil, err
	}
	reg, err := testutil.NewRegistry(filepath.Join(dir, "registry"), testutil.RegistryOptions{TLS: true})
	if err != nil {
		return nil, err
	}
	if err := testutil.PushCRIImages(reg, images); err != nil {
		reg.Close()
		return nil, err
	}
	return reg, nil
}

// startDaemon starts the daemon under test on paths of the test's own and
// stops it, removing its pods, when the test ends.
func startDaemon(t *testing.T) *testutil.CRIDaemon {
	t.Helper()
	registryOnce.Do(func() { registry, registryErr = serveImages(imagesDir) })
	if registryErr != nil {
		t.Fatal(registryErr)
	}
	// Short: the daemon's socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "cri")
	if err != nil {
		t.Fatal(err)
	}
	d, err := testutil.NewCRIDaemon(repoRoot, dir, registry)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("%s daemon log:\n%s", d.Name, d.Log())
		}
		testutil.UnmountUnder(dir)
		os.RemoveAll(dir)
	})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	return d
}
