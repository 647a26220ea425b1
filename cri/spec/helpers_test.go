package spec

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/mount"
)

// testCaps are what "ALL" grants in tests (allCapabilities is the
// daemon's own otherwise, which differs between machines).
var testCaps = []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_SYS_TIME"}

// hostFacts stubs what the package reads from the host, for the test's
// duration. Tests using it must not run in parallel.
type hostFacts struct {
	cgroup2, swap, hugetlb, inUserNS bool
	oomScoreAdj                      int
	// mounts maps mount points to their optional fields.
	mounts map[string][]string
}

func stubHost(t *testing.T, h hostFacts) {
	t.Helper()
	oldCg, oldSwap, oldHuge, oldOOM, oldHost, oldCaps, oldLookup, oldUserNS :=
		cgroup2, swapControllerAvailable, hugetlbControllerAvailable, currentOOMScoreAdj, hostname, allCapabilities, lookupMount, runningInUserNS
	t.Cleanup(func() {
		cgroup2, swapControllerAvailable, hugetlbControllerAvailable, currentOOMScoreAdj, hostname, allCapabilities, lookupMount, runningInUserNS =
			oldCg, oldSwap, oldHuge, oldOOM, oldHost, oldCaps, oldLookup, oldUserNS
	})
	cgroup2 = func() bool { return h.cgroup2 }
	swapControllerAvailable = func() bool { return h.swap }
	hugetlbControllerAvailable = func() bool { return h.hugetlb }
	runningInUserNS = func() bool { return h.inUserNS }
	currentOOMScoreAdj = func() (int, error) { return h.oomScoreAdj, nil }
	hostname = func() (string, error) { return "node1", nil }
	allCapabilities = func() []string { return slices.Clone(testCaps) }
	lookupMount = func(p string) (mountInfo, error) {
		var best string
		for mp := range h.mounts {
			if underPath(p, mp) && len(mp) >= len(best) {
				best = mp
			}
		}
		return mountInfo{Mountpoint: best, Optional: h.mounts[best]}, nil
	}
}

// writeFiles makes files (path: content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// testRootfs is a root filesystem with users and groups, as a lone bind
// mount (which the user look-up reads in place).
func testRootfs(t *testing.T) []mount.Mount {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n" +
			"alice:x:1000:1000::/home/alice:/bin/sh\n" +
			"bob:x:1001:1002::/home/bob:/bin/sh\n",
		"etc/group": "root:x:0:\n" +
			"alice:x:1000:\n" +
			"wheel:x:10:alice,bob\n" +
			"bobs:x:1002:\n" +
			"extra:x:50000:alice\n",
	})
	return []mount.Mount{{Type: "bind", Source: dir, Options: []string{"rbind", "ro"}}}
}

func testSandboxConfig() *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: "pod", Namespace: "ns", Uid: "pod-uid", Attempt: 1},
		Hostname:     "podhost",
		LogDirectory: "/var/log/pods/ns_pod_pod-uid",
		Annotations:  map[string]string{"pass.example.com/a": "1", "other": "2"},
		Linux: &runtime.LinuxPodSandboxConfig{
			SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{}},
		},
	}
}

func testContainer(t *testing.T) ContainerInput {
	t.Helper()
	return ContainerInput{
		ID:         "ctr1",
		SandboxID:  "sb1",
		SandboxPid: 42,
		Config: &runtime.ContainerConfig{
			Metadata:    &runtime.ContainerMetadata{Name: "app"},
			Annotations: map[string]string{"ctr.example.com/x": "y", "nope": "z"},
			Linux: &runtime.LinuxContainerConfig{
				SecurityContext: &runtime.LinuxContainerSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}},
			},
		},
		SandboxConfig: testSandboxConfig(),
		Image:         ocispec.ImageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"run"}, Env: []string{"IMG=1", "PATH=/img/bin"}},
		ImageName:     "docker.io/library/busybox:latest",
		Rootfs:        testRootfs(t),
		CRI:           config.Default(),
		Runtime:       config.Runtime{PodAnnotations: []string{"pass.example.com/*"}, ContainerAnnotations: []string{"ctr.example.com/*"}},
	}
}

func mustContainer(t *testing.T, in ContainerInput) *specs.Spec {
	t.Helper()
	s, err := Container(context.Background(), in)
	if err != nil {
		t.Fatalf("Container: %v", err)
	}
	checkJSON(t, s)
	return s
}

// checkJSON checks the spec survives a JSON round trip (what the shim
// reads) unchanged.
func checkJSON(t *testing.T, s *specs.Spec) {
	t.Helper()
	p, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("marshal spec: %v", err)
	}
	var back specs.Spec
	if err := json.Unmarshal(p, &back); err != nil {
		t.Fatalf("unmarshal spec: %v", err)
	}
	q, _ := json.Marshal(&back)
	if string(p) != string(q) {
		t.Fatalf("spec changed in a JSON round trip")
	}
}

func findMount(s *specs.Spec, dst string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dst {
			return &s.Mounts[i]
		}
	}
	return nil
}

func countMounts(s *specs.Spec, dst string) int {
	n := 0
	for _, m := range s.Mounts {
		if m.Destination == dst {
			n++
		}
	}
	return n
}

func nsOf(s *specs.Spec, typ specs.LinuxNamespaceType) (specs.LinuxNamespace, bool) {
	for _, n := range s.Linux.Namespaces {
		if n.Type == typ {
			return n, true
		}
	}
	return specs.LinuxNamespace{}, false
}

func errContains(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
}
