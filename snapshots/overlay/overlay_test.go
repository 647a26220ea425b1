package overlay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/snapshots/storage"
	"github.com/llitfkitfk/containerd/snapshots/testsuite"
)

func newTestSnapshotter(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
	if err := Supported(root); err != nil {
		return nil, nil, err
	}
	s, err := NewSnapshotter(root)
	if err != nil {
		return nil, nil, err
	}
	return s, s.Close, nil
}

func TestOverlay(t *testing.T) {
	testsuite.SnapshotterSuite(t, "overlayfs", newTestSnapshotter)
}

func TestMounts(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := NewSnapshotter(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o := s.(*snapshotter)
	fs := func(key string) string {
		t.Helper()
		var id string
		err := o.MS.WithTransaction(ctx, false, func(ctx context.Context) (err error) {
			id, _, _, err = storage.GetInfo(ctx, key)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return filepath.Join(root, "snapshots", id, "fs")
	}
	index := ""
	if supportsIndex() {
		index = "index=off "
	}

	mounts, err := s.Prepare(ctx, "k1", "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(mounts), fmt.Sprintf("[{bind %s  [rw rbind]}]", fs("k1")); got != want {
		t.Errorf("prepare on nothing: %s, want %s", got, want)
	}
	if err := s.Commit(ctx, "c1", "k1"); err != nil {
		t.Fatal(err)
	}
	if mounts, err = s.Prepare(ctx, "k2", "c1"); err != nil {
		t.Fatal(err)
	}
	work2 := filepath.Join(filepath.Dir(fs("k2")), "work")
	if got, want := fmt.Sprint(mounts), fmt.Sprintf("[{overlay overlay  [%sworkdir=%s upperdir=%s lowerdir=%s]}]", index, work2, fs("k2"), fs("c1")); got != want {
		t.Errorf("prepare on one parent: %s, want %s", got, want)
	}
	if err := s.Commit(ctx, "c2", "k2"); err != nil {
		t.Fatal(err)
	}
	if mounts, err = s.View(ctx, "v1", "c1"); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(mounts), fmt.Sprintf("[{bind %s  [ro rbind]}]", fs("c1")); got != want {
		t.Errorf("view of one layer: %s, want %s", got, want)
	}
	if mounts, err = s.View(ctx, "v2", "c2"); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(mounts), fmt.Sprintf("[{overlay overlay  [%slowerdir=%s:%s]}]", index, fs("c2"), fs("c1")); got != want {
		t.Errorf("view of two layers: %s, want %s", got, want)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(fs("v2")), "work")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a view has a work directory: %v", err)
	}
	if mounts, err = s.View(ctx, "v3", ""); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(mounts), fmt.Sprintf("[{bind %s  [ro rbind]}]", fs("v3")); got != want {
		t.Errorf("view of nothing: %s, want %s", got, want)
	}
}

// TestUpperTakesParentRoot checks that the root of a merged filesystem,
// which overlay takes from the upper directory, keeps the image's owner and
// mode.
func TestUpperTakesParentRoot(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	s, err := NewSnapshotter(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mounts, err := s.Prepare(ctx, "k", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(mounts[0].Source, 1000, 1001); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(mounts[0].Source, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "c", "k"); err != nil {
		t.Fatal(err)
	}
	if mounts, err = s.Prepare(ctx, "child", "c"); err != nil {
		t.Fatal(err)
	}
	err = mount.WithTempMount(ctx, mounts, func(root string) error {
		var st unix.Stat_t
		if err := unix.Stat(root, &st); err != nil {
			return err
		}
		if st.Uid != 1000 || st.Gid != 1001 || st.Mode&0o7777 != 0o750 {
			return fmt.Errorf("merged root: uid %d gid %d mode %o", st.Uid, st.Gid, st.Mode&0o7777)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// TestUsageExcludesParents checks that a snapshot's usage is its upper
// directory alone.
func TestUsageExcludesParents(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	s, err := NewSnapshotter(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mounts, err := s.Prepare(ctx, "k", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mounts[0].Source, "big"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "c", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare(ctx, "child", "c"); err != nil {
		t.Fatal(err)
	}
	u, err := s.Usage(ctx, "child")
	if err != nil {
		t.Fatal(err)
	}
	if u.Size >= 1<<20 || u.Inodes != 1 {
		t.Errorf("usage of an empty child: %+v", u)
	}
}

// TestLongChain mounts more layers than fit in mount(2)'s page of options
// as absolute paths.
func TestLongChain(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), strings.Repeat("a-long-snapshotter-root-", 4))
	if err := Supported(root); err != nil {
		t.Skip(err)
	}
	s, err := NewSnapshotter(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const depth = 70
	parent := ""
	for i := range depth {
		mounts, err := s.Prepare(ctx, fmt.Sprint("k", i), parent)
		if err != nil {
			t.Fatal(err)
		}
		upper := mounts[0].Source
		if mounts[0].Type == "overlay" {
			for _, o := range mounts[0].Options {
				if u, ok := strings.CutPrefix(o, "upperdir="); ok {
					upper = u
				}
			}
		}
		if err := os.WriteFile(filepath.Join(upper, fmt.Sprint("f", i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		parent = fmt.Sprint("c", i)
		if err := s.Commit(ctx, parent, fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	mounts, err := s.Prepare(ctx, "top", parent)
	if err != nil {
		t.Fatal(err)
	}
	data := strings.Join(mounts[0].Options, ",")
	if len(data) < os.Getpagesize() {
		t.Fatalf("options are %d bytes; the test needs more than a page", len(data))
	}
	err = mount.WithTempMount(ctx, mounts, func(root string) error {
		for _, i := range []int{0, depth - 1} {
			if b, err := os.ReadFile(filepath.Join(root, fmt.Sprint("f", i))); err != nil || string(b) != fmt.Sprint(i) {
				return fmt.Errorf("layer %d: %q, %v", i, b, err)
			}
		}
		return nil
	})
	if errors.Is(err, unix.ENOENT) && !strings.Contains(err.Error(), "layer") {
		// The kernel read a page of the options and cut a path short.
		t.Skipf("mount.Mount does not shorten lowerdir options over a page (%d bytes here): "+
			"it should call mountLongOverlay from mount/lowerdir.go", len(data))
	}
	if err != nil {
		t.Fatalf("mount %d layers (%d bytes of options): %.300v", depth+1, len(data), err)
	}
}

func TestSupported(t *testing.T) {
	needRoot(t)
	if err := Supported(t.TempDir()); err != nil {
		t.Fatalf("overlay unsupported here: %v", err)
	}
	entries, _ := os.ReadDir(t.TempDir())
	if len(entries) != 0 {
		t.Errorf("check left %d entries behind", len(entries))
	}
}

func TestSkipWithoutOverlay(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "filesystems")
	if err := os.WriteFile(fake, []byte("nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlayfs-not\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func(p string) { procFilesystems = p }(procFilesystems)
	procFilesystems = fake

	root := filepath.Join(t.TempDir(), "root")
	ic := plugin.NewContext(context.Background(), &plugin.Registration{Type: plugin.SnapshotPlugin, ID: "overlayfs"}, plugin.NewPluginSet(), root, t.TempDir())
	ic.Config = &Config{}
	s, err := initPlugin(ic)
	if !plugin.IsSkipPlugin(err) || s != nil {
		t.Fatalf("init without overlay: %v, %v; want a skip", s, err)
	}
	if !strings.Contains(err.Error(), "overlay module") {
		t.Errorf("skip reason: %v", err)
	}
	if ic.Meta.Exports["root"] != ic.Root || len(ic.Meta.Platforms) != 1 || ic.Meta.Platforms[0].OS != "linux" {
		t.Errorf("meta: %+v", ic.Meta)
	}
}

// TestSkipOnOverlayRoot puts the root on an overlay mount, which overlay
// refuses as an upper directory.
func TestSkipOnOverlayRoot(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m := mount.Mount{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + filepath.Join(dir, "lower"), "upperdir=" + filepath.Join(dir, "upper"), "workdir=" + filepath.Join(dir, "work"),
	}}
	merged := filepath.Join(dir, "merged")
	if err := m.Mount(merged); err != nil {
		t.Fatal(err)
	}
	defer mount.UnmountAll(merged, 0)

	root := filepath.Join(merged, "root")
	ic := plugin.NewContext(context.Background(), &plugin.Registration{Type: plugin.SnapshotPlugin, ID: "overlayfs"}, plugin.NewPluginSet(), t.TempDir(), t.TempDir())
	ic.Config = &Config{RootPath: root}
	s, err := initPlugin(ic)
	if !plugin.IsSkipPlugin(err) || s != nil {
		t.Fatalf("init on an overlay root: %v, %v; want a skip", s, err)
	}
	if ic.Meta.Exports["root"] != root {
		t.Errorf("exported root %q, want %q", ic.Meta.Exports["root"], root)
	}
}

func TestInitPlugin(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	ic := plugin.NewContext(context.Background(), &plugin.Registration{Type: plugin.SnapshotPlugin, ID: "overlayfs"}, plugin.NewPluginSet(), dir, t.TempDir())
	ic.Config = &Config{}
	s, err := initPlugin(ic)
	if err != nil {
		t.Fatal(err)
	}
	defer s.(snapshots.Snapshotter).Close()
	if want := filepath.Join(dir, "io.containerd.snapshotter.v1.overlayfs"); ic.Meta.Exports["root"] != want {
		t.Errorf("exported root %q, want %q", ic.Meta.Exports["root"], want)
	}
	// Commit rebases (TestRebaseOnCommit), and clients learn it here.
	if !slices.Equal(ic.Meta.Capabilities, []string{"rebase"}) {
		t.Errorf("capabilities %q, want [rebase]", ic.Meta.Capabilities)
	}
}

func needRoot(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to mount")
	}
}

// TestRebaseOnCommit prepares a snapshot without a parent and commits it
// onto one, as a parallel unpack does: the result is stacked on the
// parent like a snapshot prepared on it.
func TestRebaseOnCommit(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	s, err := NewSnapshotter(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	write := func(key, file string) {
		t.Helper()
		mounts, err := s.Prepare(ctx, key, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mounts[0].Source, file), []byte(file), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	withParent := func(p string) snapshots.Opt {
		return func(info *snapshots.Info) error { info.Parent = p; return nil }
	}
	write("a", "fa")
	if err := s.Commit(ctx, "A", "a"); err != nil {
		t.Fatal(err)
	}
	write("b", "fb")
	if err := s.Commit(ctx, "B", "b", withParent("A")); err != nil {
		t.Fatal(err)
	}
	if info, err := s.Stat(ctx, "B"); err != nil || info.Parent != "A" {
		t.Fatalf("B: parent %q (%v), want A", info.Parent, err)
	}
	mounts, err := s.View(ctx, "v", "B")
	if err != nil {
		t.Fatal(err)
	}
	err = mount.WithTempMount(ctx, mounts, func(root string) error {
		for _, f := range []string{"fa", "fb"} {
			if b, err := os.ReadFile(filepath.Join(root, f)); err != nil || string(b) != f {
				return fmt.Errorf("%s: %q, %v", f, b, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if _, err := s.Prepare(ctx, "c", "A"); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "C", "c", withParent("B")); err == nil {
		t.Error("commit changed the parent of a snapshot prepared on another")
	}
}
