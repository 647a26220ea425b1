package mount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// setTempLocation points temporary mounts at a fresh directory for the
// test, and back at the system temp directory after it.
func setTempLocation(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpmounts")
	if err := SetTempMountLocation(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tempMountLocation.Store(nil) })
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	return real
}

func needRoot(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to mount")
	}
}

// bind bind-mounts src on target, as a temporary mount a crash left would
// be, and detaches it at the test's end should the code under test fail
// to.
func bind(t *testing.T, src, target string) {
	t.Helper()
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { UnmountAll(target, unix.MNT_DETACH) })
}

func mountedUnder(t *testing.T, dir string) []string {
	t.Helper()
	mps, err := mountPointsUnder(dir)
	if err != nil {
		t.Fatal(err)
	}
	return mps
}

// A snapshot's directory with a file and a directory in it, standing for
// the data a leftover mount shows, which its cleanup must leave alone.
func snapshotDir(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "data"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	return src
}

func checkSnapshotDir(t *testing.T, src string) {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(src, "data")); err != nil || string(b) != "keep" {
		t.Errorf("the mounted snapshot's file after cleanup: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(src, "sub")); err != nil {
		t.Errorf("the mounted snapshot's directory after cleanup: %v", err)
	}
}

func TestTempMountLocation(t *testing.T) {
	needRoot(t)
	tmpdir := t.TempDir()
	t.Setenv("TMPDIR", tmpdir)
	dir := setTempLocation(t)
	src := snapshotDir(t)
	err := WithTempMount(context.Background(), []Mount{{Type: "bind", Source: src, Options: []string{"rbind", "ro"}}}, func(root string) error {
		if filepath.Dir(root) != dir {
			t.Errorf("temporary mount on %s, want it under %s", root, dir)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, tmpdir} {
		if entries, _ := os.ReadDir(d); len(entries) != 0 {
			t.Errorf("%s holds %v after the mount", d, entries)
		}
	}
}

// What a previous run left in the location, a bind mount and a plain
// directory with files in it, goes at start-up; the data the mount shows
// stays where it belongs.
func TestCleanupTempMounts(t *testing.T) {
	needRoot(t)
	dir := setTempLocation(t)
	src := snapshotDir(t)
	mounted, err := os.MkdirTemp(dir, tempMountPrefix)
	if err != nil {
		t.Fatal(err)
	}
	bind(t, src, mounted)
	// A mount within the first, as an rbind of a snapshot brings along.
	nested := filepath.Join(mounted, "sub")
	bind(t, t.TempDir(), nested)
	plain, err := os.MkdirTemp(dir, tempMountPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(plain, "written-into-the-bare-directory"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := mountedUnder(t, dir); !slices.Contains(got, mounted) || !slices.Contains(got, nested) {
		t.Fatalf("mounts under %s: %q, want %s and %s", dir, got, mounted, nested)
	}

	if err := CleanupTempMounts(); err != nil {
		t.Fatal(err)
	}
	if got := mountedUnder(t, dir); len(got) != 0 {
		t.Errorf("still mounted: %q", got)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("left in %s: %v (%v)", dir, entries, err)
	}
	checkSnapshotDir(t, src)
}

// Without a location set, cleanup must not touch the system temp
// directory, where other programs' mounts may be.
func TestCleanupWithoutLocation(t *testing.T) {
	tmpdir := t.TempDir()
	t.Setenv("TMPDIR", tmpdir)
	if err := os.Mkdir(filepath.Join(tmpdir, tempMountPrefix+"other"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := CleanupTempMounts(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tmpdir, tempMountPrefix+"other")); err != nil {
		t.Errorf("cleanup without a location swept the system temp directory: %v", err)
	}
}

// The crash test runs this test binary again as a daemon applying a first
// layer through a temporary bind mount, and killed by SIGKILL meanwhile.
const (
	crashLocationEnv = "MOUNT_CRASH_LOCATION"
	crashSourceEnv   = "MOUNT_CRASH_SOURCE"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashLocationEnv); dir != "" {
		err := SetTempMountLocation(dir)
		if err == nil {
			mounts := []Mount{{Type: "bind", Source: os.Getenv(crashSourceEnv), Options: []string{"rbind", "rw"}}}
			err = WithTempMount(context.Background(), mounts, func(string) error {
				return syscall.Kill(os.Getpid(), syscall.SIGKILL)
			})
		}
		fmt.Fprintln(os.Stderr, "still alive:", err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

func TestCleanupAfterKill(t *testing.T) {
	needRoot(t)
	dir := setTempLocation(t)
	src := snapshotDir(t)
	tmpdir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmpdir, crashLocationEnv+"="+dir, crashSourceEnv+"="+src)
	cmd.Stderr = os.Stderr
	err := cmd.Run()
	// Whatever the kill left mounted, here or in the temp directory, goes
	// when the test ends.
	t.Cleanup(func() {
		for _, d := range []string{dir, tmpdir} {
			mps, _ := mountPointsUnder(d)
			for _, mp := range mps {
				UnmountAll(mp, unix.MNT_DETACH)
			}
		}
	})
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want death by SIGKILL", err)
	}
	left := mountedUnder(t, dir)
	if len(left) != 1 {
		t.Fatalf("mounts the kill left under %s: %q, want one", dir, left)
	}

	if err := CleanupTempMounts(); err != nil {
		t.Fatal(err)
	}
	if got := mountedUnder(t, dir); len(got) != 0 {
		t.Errorf("still mounted: %q", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left in %s: %v", dir, entries)
	}
	checkSnapshotDir(t, src)
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/a/b`:              "/a/b",
		`/a\040b`:           "/a b",
		`/tab\011nl\012`:    "/tab\tnl\n",
		`/back\134slash`:    `/back\slash`,
		`/not\09an\escape\`: `/not\09an\escape\`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescape %q = %q, want %q", in, got, want)
		}
	}
}
