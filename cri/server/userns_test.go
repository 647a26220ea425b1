package server

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go/features"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/errdefs"
)

// runc 1.4's `features` (abridged): user namespaces and idmap mounts.
const runc14Features = `{"ociVersionMin":"1.0.0","ociVersionMax":"1.3.0",
 "linux":{"namespaces":["cgroup","ipc","mount","network","pid","time","user","uts"],
 "mountExtensions":{"idmap":{"enabled":true}}}}`

// runc 1.1.5's: user namespaces, no mountExtensions.
const runc115Features = `{"ociVersionMin":"1.0.0","ociVersionMax":"1.0.2-dev",
 "linux":{"namespaces":["cgroup","ipc","mount","network","pid","user","uts"]}}`

func parseFeatures(t *testing.T, s string) *features.Features {
	t.Helper()
	var f features.Features
	if err := json.Unmarshal([]byte(s), &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

func TestRuntimeSupportsUserns(t *testing.T) {
	off := false
	noIDMap := parseFeatures(t, runc14Features)
	noIDMap.Linux.MountExtensions.IDMap.Enabled = &off
	noUser := parseFeatures(t, runc14Features)
	noUser.Linux.Namespaces = []string{"mount", "network"}
	for name, tc := range map[string]struct {
		f    *features.Features
		want bool
	}{
		"runc 1.4":          {parseFeatures(t, runc14Features), true},
		"runc 1.1.5":        {parseFeatures(t, runc115Features), false},
		"idmap disabled":    {noIDMap, false},
		"no user namespace": {noUser, false},
		"no linux section":  {parseFeatures(t, `{"ociVersionMin":"1.0.0"}`), false},
		"nil":               {nil, false},
	} {
		if got := runtimeSupportsUserns(tc.f); got != tc.want {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
}

// fakeRuntime writes an executable printing out for `features` (and
// failing for anything else), standing for a runtime binary.
func fakeRuncBinary(t *testing.T, out string, exit int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fake-runc")
	script := "#!/bin/sh\n[ \"$1\" = features ] || exit 9\ncat <<'EOF'\n" + out + "\nEOF\nexit " + string(rune('0'+exit)) + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRuntimeFeaturesFromBinary(t *testing.T) {
	ctx := context.Background()
	f, err := runtimeFeatures(ctx, fakeRuncBinary(t, runc14Features, 0))
	if err != nil || !runtimeSupportsUserns(f) {
		t.Fatalf("runc 1.4 output: %+v, %v", f, err)
	}
	if _, err := runtimeFeatures(ctx, fakeRuncBinary(t, "Incorrect Usage: features", 1)); err == nil {
		t.Fatal("a failing features subcommand gave no error")
	}
	if _, err := runtimeFeatures(ctx, fakeRuncBinary(t, "not json", 0)); err == nil || !strings.Contains(err.Error(), "not an OCI features document") {
		t.Fatalf("garbage output: %v", err)
	}
	if _, err := runtimeFeatures(ctx, filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing binary gave no error")
	}
}

func TestUsernsProbe(t *testing.T) {
	rt := func(binary string) config.Runtime {
		o := map[string]any{}
		if binary != "" {
			o["BinaryName"] = binary
		}
		return config.Runtime{Type: config.DefaultRuntimeType, Options: o}
	}
	var mu sync.Mutex
	asked := map[string]int{}
	p := &usernsProbe{
		kernel: func() bool { return true },
		ask: func(ctx context.Context, binary string) (*features.Features, error) {
			mu.Lock()
			asked[binary]++
			mu.Unlock()
			switch binary {
			case "runc-1.4":
				return parseFeatures(t, runc14Features), nil
			case "runc-1.1":
				return parseFeatures(t, runc115Features), nil
			}
			return nil, errors.New("exec: not found")
		},
	}
	ctx := context.Background()
	// Concurrent Status calls ask each binary once.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !p.supported(ctx, rt("runc-1.4")) {
				t.Error("runc 1.4 not supported")
			}
			if p.supported(ctx, rt("runc-1.1")) {
				t.Error("runc 1.1 supported")
			}
		}()
	}
	wg.Wait()
	if asked["runc-1.4"] != 1 || asked["runc-1.1"] != 1 {
		t.Fatalf("asked %v, want each binary once", asked)
	}
	if p.supported(ctx, rt("missing")) {
		t.Fatal("a binary that cannot be asked is supported")
	}
	// No BinaryName: runc on PATH is asked.
	p.supported(ctx, rt(""))
	if asked[defaultRuncBinary] != 1 {
		t.Fatalf("asked %v, want %q", asked, defaultRuncBinary)
	}
	// Another shim type is not runc's: nothing is claimed or asked.
	if p.supported(ctx, config.Runtime{Type: "io.containerd.kata.v2", Options: map[string]any{"BinaryName": "runc-1.4"}}) {
		t.Fatal("a non-runc runtime type is supported")
	}
	// Without idmapped mounts in the kernel nothing is supported.
	old := p.kernel
	p.kernel = func() bool { return false }
	if p.supported(ctx, rt("runc-1.4")) {
		t.Fatal("supported on a kernel without idmapped mounts")
	}
	p.kernel = old
}

func TestStatusAdvertisesFeatures(t *testing.T) {
	s := &Service{config: config.Default()}
	hs := s.runtimeHandlers(context.Background())
	if len(hs) != 2 || hs[0].GetName() != "" || hs[1].GetName() != config.DefaultRuntimeName {
		t.Fatalf("handlers %v", hs)
	}
	// Both names are the same runtime: the same answer.
	if hs[0].GetFeatures().GetUserNamespaces() != hs[1].GetFeatures().GetUserNamespaces() {
		t.Fatalf("default handler and %q disagree: %v", config.DefaultRuntimeName, hs)
	}
}

func TestPodUserns(t *testing.T) {
	cfg := func(u *runtime.UserNamespace) *runtime.PodSandboxConfig {
		return &runtime.PodSandboxConfig{Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{UsernsOptions: u}}}}
	}
	m := []*runtime.IDMapping{{HostId: 1000, Length: 100000}}
	if got := podUserns(cfg(&runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: m})); got == nil || got.uid.GetHostId() != 1000 {
		t.Fatalf("POD mapping: %v", got)
	}
	for name, u := range map[string]*runtime.UserNamespace{
		"none":         nil,
		"NODE":         {Mode: runtime.NamespaceMode_NODE},
		"two mappings": {Mode: runtime.NamespaceMode_POD, Uids: append(m, m...), Gids: m},
		"no gids":      {Mode: runtime.NamespaceMode_POD, Uids: m},
		"zero length":  {Mode: runtime.NamespaceMode_POD, Uids: []*runtime.IDMapping{{HostId: 1}}, Gids: m},
		"CONTAINER":    {Mode: runtime.NamespaceMode_CONTAINER, Uids: m, Gids: m},
		"nil mapping":  {Mode: runtime.NamespaceMode_POD, Uids: []*runtime.IDMapping{nil}, Gids: m},
	} {
		if got := podUserns(cfg(u)); got != nil {
			t.Errorf("%s: %v, want no remapping", name, got)
		}
	}
	k := (&podIDMap{uid: m[0], gid: &runtime.IDMapping{HostId: 2000, Length: 10}}).remappedKey("sha256:abc")
	if k != "sha256:abc-userns-0:1000:100000-0:2000:10" {
		t.Fatalf("remapped key %q", k)
	}
}

func TestToHost(t *testing.T) {
	m := &runtime.IDMapping{ContainerId: 10, HostId: 1000, Length: 5}
	for id, want := range map[uint32]int64{9: -1, 10: 1000, 14: 1004, 15: -1} {
		got, ok := toHost(m, id)
		if (want < 0) == ok || (ok && int64(got) != want) {
			t.Errorf("toHost(%d) = %d, %v; want %d", id, got, ok, want)
		}
	}
	// A range ending at the largest id does not wrap.
	big := &runtime.IDMapping{ContainerId: 1<<32 - 2, HostId: 5, Length: 2}
	if got, ok := toHost(big, 1<<32-1); !ok || got != 6 {
		t.Errorf("toHost at the top: %d, %v", got, ok)
	}
}

func needRoot(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
}

func TestChownTree(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "bin", "su"), []byte("x"), 0o755))
	must(os.Chmod(filepath.Join(root, "bin", "su"), 0o4755|os.ModeSetuid))
	must(os.WriteFile(filepath.Join(root, "home"), nil, 0o644))
	must(os.Lchown(filepath.Join(root, "home"), 1000, 50))
	must(os.Symlink("bin/su", filepath.Join(root, "link")))
	m := &podIDMap{uid: &runtime.IDMapping{HostId: 100000, Length: 65536}, gid: &runtime.IDMapping{HostId: 200000, Length: 65536}}
	must(chownTree(root, m))
	owner := func(p string) (uint32, uint32, os.FileMode) {
		fi, err := os.Lstat(filepath.Join(root, p))
		must(err)
		st := fi.Sys().(*syscall.Stat_t)
		return st.Uid, st.Gid, fi.Mode()
	}
	for p, want := range map[string][2]uint32{".": {100000, 200000}, "bin/su": {100000, 200000}, "home": {101000, 200050}, "link": {100000, 200000}} {
		if u, g, _ := owner(p); u != want[0] || g != want[1] {
			t.Errorf("%s owned by %d:%d, want %d:%d", p, u, g, want[0], want[1])
		}
	}
	if _, _, mode := owner("bin/su"); mode&os.ModeSetuid == 0 {
		t.Errorf("bin/su lost setuid: %v", mode)
	}

	// An owner outside the mapping is refused, naming the file.
	other := t.TempDir()
	must(os.WriteFile(filepath.Join(other, "home"), nil, 0o644))
	must(os.Lchown(filepath.Join(other, "home"), 70000, 0))
	err := chownTree(other, m)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "home") {
		t.Fatalf("owner outside the mapping: %v", err)
	}
}

func TestUsernsHolder(t *testing.T) {
	needRoot(t)
	m := &podIDMap{uid: &runtime.IDMapping{HostId: 100000, Length: 65536}, gid: &runtime.IDMapping{HostId: 200000, Length: 65536}}
	h, err := newUsernsHolder(m)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	pid := h.pid
	uidMap, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "uid_map"))
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(string(uidMap)); len(f) != 3 || f[0] != "0" || f[1] != "100000" || f[2] != "65536" {
		t.Fatalf("holder's uid_map %q", uidMap)
	}
	self, _ := os.Readlink("/proc/self/ns/user")
	if ns, _ := os.Readlink(h.path()); ns == "" || ns == self {
		t.Fatalf("holder's user namespace %q, the test's %q", ns, self)
	}
	// The network namespace is a new one, owned by the new user namespace.
	selfNet, _ := os.Readlink("/proc/self/ns/net")
	if ns, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "ns", "net")); ns == "" || ns == selfNet {
		t.Fatalf("holder's network namespace %q, the test's %q", ns, selfNet)
	}
	h.Close()
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err == nil {
		t.Fatalf("holder %d still there after Close", pid)
	}
	var none *usernsHolder
	none.Close() // pods without a user namespace have none
	if none.path() != "" {
		t.Fatal("no holder has a path")
	}
}
