package netns

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/internal/privaterun"
)

// TestMain runs the tests, as root, in a mount namespace of their own so
// that the namespaces' bind mounts never reach the host's mount table.
func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	const mark = "CRI_NETNS_TEST_PRIVATE"
	if os.Getenv(mark) == "" {
		code, err := privaterun.Reexec(mark + "=1")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(code)
	}
	if err := privaterun.Enter(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestLifecycle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	// The namespace of this goroutine's thread, from before; not
	// /proc/self/ns/net: that is the main thread's, and the main thread
	// may be the one New used (the runtime parks it instead of ending it).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	threadNS := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	self := inode(t, threadNS)
	dir := filepath.Join(t.TempDir(), "netns")
	a, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.Path() == b.Path() || !strings.HasPrefix(filepath.Base(a.Path()), "cni-") || filepath.Dir(a.Path()) != dir {
		t.Fatalf("paths %s and %s", a.Path(), b.Path())
	}
	ia, ib := inode(t, a.Path()), inode(t, b.Path())
	if ia == self || ib == self || ia == ib {
		t.Fatalf("namespaces are not new ones: self %d, a %d, b %d", self, ia, ib)
	}
	// The creating thread's namespace must not leak into this one's.
	if inode(t, threadNS) != self {
		t.Fatal("the calling thread changed network namespace")
	}
	for _, n := range []*NetNS{a, Load(b.Path())} {
		if closed, err := n.Closed(); err != nil || closed {
			t.Fatalf("%s: closed %v, %v", n.Path(), closed, err)
		}
	}
	if err := a.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.Path()); !os.IsNotExist(err) {
		t.Fatalf("%s still there: %v", a.Path(), err)
	}
	if closed, err := a.Closed(); err != nil || !closed {
		t.Fatalf("removed: closed %v, %v", closed, err)
	}
	if err := a.Remove(); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if closed, _ := b.Closed(); closed {
		t.Fatal("removing one namespace closed the other")
	}
	if err := b.Remove(); err != nil {
		t.Fatal(err)
	}
}

func TestClosedPlainFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cni-x")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if closed, err := Load(p).Closed(); err != nil || !closed {
		t.Fatalf("a plain file: closed %v, %v", closed, err)
	}
	if err := Load(p).Remove(); err != nil {
		t.Fatal(err)
	}
}

// FromProcess keeps a process's network namespace at a path of New's
// shape; a process that does not exist leaves no mount point behind.
func TestFromProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := filepath.Join(t.TempDir(), "netns")
	n, err := FromProcess(dir, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(n.Path()), "cni-") || filepath.Dir(n.Path()) != dir {
		t.Fatalf("path %s", n.Path())
	}
	if got, want := inode(t, n.Path()), inode(t, fmt.Sprintf("/proc/%d/ns/net", os.Getpid())); got != want {
		t.Fatalf("mounted namespace %d, the process is in %d", got, want)
	}
	if err := n.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := FromProcess(dir, 1<<30); err == nil {
		t.Fatal("a missing process's namespace was mounted")
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("mount points left behind: %v", left)
	}
}
