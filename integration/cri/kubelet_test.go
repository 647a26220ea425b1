//go:build integration

package cri

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llitfkitfk/containerd/internal/testutil"
)

// TestKubeletStaticPod runs a real kubelet (bin/cri/kubelet, built by
// `make cri-kubelet`) in standalone mode on the daemon under test: a static
// pod of two containers reaches Running, their logs are read back with
// crictl, and deleting the manifest removes the pod. The kubelet is kept
// off the host (testutil.CRIKubelet); the test checks that the host's
// sysctls and paths it would change are as they were.
func TestKubeletStaticPod(t *testing.T) {
	if _, err := os.Stat(testutil.KubeletBinary(repoRoot)); err != nil {
		t.Skipf("no kubelet: %v (`make cri-kubelet` builds bin/cri/kubelet from the Go module proxy)", err)
	}
	before, err := testutil.HostSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "kubelet")
	if err != nil {
		t.Fatal(err)
	}
	var k *testutil.CRIKubelet
	// Registered first, so it runs last: after the kubelet and the daemon
	// have stopped.
	t.Cleanup(func() {
		if k != nil {
			if left := k.Cleanup(); len(left) > 0 {
				t.Errorf("cgroups left under the kubelet's cgroup root: %v", left)
			}
		}
		testutil.UnmountUnder(dir)
		os.RemoveAll(dir)
		after, err := testutil.HostSnapshot()
		if err != nil {
			t.Error(err)
		} else if d := before.Diff(after); len(d) > 0 {
			t.Errorf("the kubelet changed the host:\n%s", strings.Join(d, "\n"))
		}
	})
	d := startDaemon(t)
	k, err = testutil.NewCRIKubelet(repoRoot, dir, fmt.Sprintf("cri-kubelet-%d", os.Getpid()), d)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		k.Stop()
		if t.Failed() {
			t.Logf("kubelet log (tail):\n%s", tail(k.Log(), 150))
		}
	})

	const ns, name = "cri-kubelet", "static"
	manifest := filepath.Join(k.ManifestDir, name+".json")
	writeManifest(t, manifest, ns, name)

	// Both containers running in the pod's sandbox.
	var pod string
	ctrs := map[string]string{}
	waitFor(t, k, 2*time.Minute, "the static pod's containers running", func() error {
		pods := kubeletPods(t, d, ns)
		if len(pods) != 1 || str(pods[0], "state") != "SANDBOX_READY" {
			return fmt.Errorf("pods of namespace %s: %v", ns, pods)
		}
		pod = str(pods[0], "id")
		if got := str(pods[0], "labels", "io.kubernetes.pod.name"); !strings.HasPrefix(got, name+"-") {
			return fmt.Errorf("pod name label %q, want %s-<node name> (a static pod's name)", got, name)
		}
		list := field(crictlJSON(t, d, "ps", "-o", "json", "--pod", pod), "containers")
		items, _ := list.([]any)
		for _, c := range items {
			if str(c, "state") == "CONTAINER_RUNNING" {
				ctrs[str(c, "metadata", "name")] = str(c, "id")
			}
		}
		if ctrs["first"] == "" || ctrs["second"] == "" {
			return fmt.Errorf("running containers of pod %s: %v; all: %v", pod, ctrs, items)
		}
		return nil
	})
	t.Logf("pod %s running containers %v", pod, ctrs)

	// Their logs, through the daemon (crictl logs) and in the kubelet's
	// podLogsDir, where the kubelet told the daemon to write them.
	for _, c := range []string{"first", "second"} {
		waitFor(t, k, 30*time.Second, "the logs of "+c, func() error {
			stdout, stderr, code, err := d.Crictl("logs", ctrs[c])
			if err != nil || code != 0 {
				return fmt.Errorf("crictl logs: exit %d %v %s", code, err, stderr)
			}
			if want := c + " to stdout\n"; !strings.Contains(stdout, want) {
				return fmt.Errorf("stdout %q lacks %q", stdout, want)
			}
			if want := c + " to stderr\n"; !strings.Contains(stderr, want) {
				return fmt.Errorf("stderr %q lacks %q", stderr, want)
			}
			return nil
		})
		files, _ := filepath.Glob(filepath.Join(k.PodLogsDir, ns+"_"+name+"-*", c, "*.log"))
		if len(files) == 0 {
			t.Errorf("no log file of %s under the kubelet's podLogsDir %s", c, k.PodLogsDir)
		}
	}

	// The manifest deleted, the kubelet stops the pod and its container
	// garbage collection (every minute) removes it.
	if err := os.Remove(manifest); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, k, 3*time.Minute, "the pod removed after its manifest was deleted", func() error {
		if pods := kubeletPods(t, d, ns); len(pods) > 0 {
			return fmt.Errorf("pods left: %v", pods)
		}
		if left := ids(t, d, "ps", "-a", "--label", "io.kubernetes.pod.namespace="+ns); len(left) > 0 {
			return fmt.Errorf("containers left: %v", left)
		}
		return nil
	})
	t.Logf("pod removed %s after its manifest was deleted", time.Since(start).Round(time.Second))

	if !k.Stop() {
		t.Logf("the kubelet did not exit on SIGTERM within 10s; killed")
	}
	if left := testutil.ProcessesOf(k.Binary); len(left) > 0 {
		t.Errorf("kubelet processes left after it stopped: %v", left)
	}
	t.Logf("sysctls the kubelet saw (and set) in its own view, the host's untouched: %v", k.ShieldedValues())
}

// writeManifest writes the static pod's manifest: two busybox containers,
// each writing a line to stdout and one to stderr, then waiting (sh as
// the container's first process exits on SIGTERM only with a trap).
func writeManifest(t *testing.T, path, ns, name string) {
	t.Helper()
	container := func(n string) map[string]any {
		return map[string]any{
			"name":            n,
			"image":           testutil.CRIBusyboxImage,
			"imagePullPolicy": "IfNotPresent",
			"command": []string{"sh", "-c", fmt.Sprintf(
				"trap 'exit 0' TERM; echo %[1]s to stdout; echo %[1]s to stderr >&2; while true; do sleep 1; done", n)},
		}
	}
	pod := map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"terminationGracePeriodSeconds": 5,
			"containers":                    []any{container("first"), container("second")},
		},
	}
	b, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	// Written aside and renamed: the kubelet must not read half a file.
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path))
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// kubeletPods are the pod sandboxes of Kubernetes namespace ns.
func kubeletPods(t *testing.T, d *testutil.CRIDaemon, ns string) []any {
	t.Helper()
	items, _ := field(crictlJSON(t, d, "pods", "-o", "json", "--namespace", ns), "items").([]any)
	return items
}

// waitFor retries f until it returns nil, for timeout at most; it fails
// at once if the kubelet exits.
func waitFor(t *testing.T, k *testutil.CRIKubelet, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-k.Exited():
			t.Fatalf("%s: the kubelet exited: %v", what, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
