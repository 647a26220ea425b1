package server

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/internal/privaterun"
)

// inPrivateMountNS runs the calling test again, alone, in a mount
// namespace of its own with a private /run (privaterun.Enter), and
// reports whether this is that run. The outer run passes or fails with it.
func inPrivateMountNS(t *testing.T) bool {
	t.Helper()
	const mark = "CRI_SANDBOX_TEST_PRIVATE"
	if os.Getenv(mark) != "" {
		if err := privaterun.Enter(); err != nil {
			t.Fatal(err)
		}
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts network namespaces and /dev/shm")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), mark+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in a private mount namespace: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("the test did not run in the private mount namespace:\n%s", out)
	}
	return false
}

// mounted reports whether path is a mount point in this namespace.
func mounted(t *testing.T, path string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

func podNetPod(name string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: name, Namespace: "default", Uid: "uid-" + name},
		Hostname: name,
	}
}

// A pod with its own network and IPC: its network namespace and /dev/shm
// tmpfs exist while it runs, are gone once it stops, and a failed run
// leaves neither behind.
func TestPodNetworkSandbox(t *testing.T) {
	if !inPrivateMountNS(t) {
		return
	}
	e := newSandboxEnv(t)
	e.s.config.NetNSMountsUnderStateDir = true
	nsDir := filepath.Join(e.s.config.StateDir, "netns")

	id, err := e.run(podNetPod("a"), "")
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := e.s.sandboxes.Get(id)
	nsPath := sb.Metadata.NetNSPath
	shm := filepath.Join(e.s.config.StateDir, "sandboxes", id, "shm")
	if filepath.Dir(nsPath) != nsDir || !mounted(t, nsPath) || !mounted(t, shm) {
		t.Fatalf("netns %s (mounted %v), shm mounted %v", nsPath, mounted(t, nsPath), mounted(t, shm))
	}
	if e.net.setups[id] != nsPath || e.sp.in[0].NetNSPath != nsPath || e.sp.in[0].ShmPath != shm {
		t.Errorf("CNI got %q, the spec %+v", e.net.setups[id], e.sp.in[0])
	}
	hosts, _ := os.ReadFile(filepath.Join(e.s.config.RootDir, "sandboxes", id, "hosts"))
	if !strings.Contains(string(hosts), "10.88.0.7\ta\n") {
		t.Errorf("hosts does not name the pod's IP:\n%s", hosts)
	}
	st, err := e.s.PodSandboxStatus(e.ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil || st.GetStatus().GetNetwork().GetIp() != "10.88.0.7" || st.GetStatus().GetNetwork().GetAdditionalIps()[0].GetIp() != "fd00::7" {
		t.Fatalf("status %v, %v", st, err)
	}
	// The network is set up while the pause task starts, after the
	// record is made: the record's metadata, which a restart recovers
	// the pod from, must still name its IP.
	rec, err := e.cs.Get(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if md, err := store.UnmarshalSandboxMetadata(rec.Extensions[store.SandboxMetadataExtension].GetValue()); err != nil || md.IP != "10.88.0.7" || md.NetNSPath != nsPath {
		t.Errorf("record's metadata %+v, %v: want the pod's IP and netns", md, err)
	}

	if _, err := e.s.StopPodSandbox(e.ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(nsPath); !os.IsNotExist(err) || mounted(t, shm) {
		t.Errorf("after stop: netns %v, shm mounted %v", err, mounted(t, shm))
	}
	if len(e.net.removed) != 1 || e.net.removed[0] != id {
		t.Errorf("CNI teardowns %v", e.net.removed)
	}
	st, _ = e.s.PodSandboxStatus(e.ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id})
	if ip := st.GetStatus().GetNetwork().GetIp(); ip != "" {
		t.Errorf("stopped pod reports IP %q", ip)
	}

	// A failure after the network and files were made undoes them.
	e.rt.failStart = true
	if _, err := e.run(podNetPod("b"), ""); err == nil {
		t.Fatal("no error")
	}
	entries, _ := os.ReadDir(nsDir)
	if len(entries) != 0 || len(e.net.setups) != 0 {
		t.Errorf("failed run left netns %v, CNI setups %v", entries, e.net.setups)
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), e.s.config.StateDir+"/sandboxes/") {
		t.Error("failed run left its shm mounted")
	}

	// Network setup failing: the namespace goes too.
	e.rt.failStart = false
	e.net.failWith = errors.New("no addresses left")
	if _, err := e.run(podNetPod("c"), ""); err == nil || !strings.Contains(err.Error(), "no addresses left") {
		t.Fatalf("CNI failure: %v", err)
	}
	if entries, _ := os.ReadDir(nsDir); len(entries) != 0 {
		t.Errorf("CNI failure left netns %v", entries)
	}
}
