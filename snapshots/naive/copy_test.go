package naive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/snapshots"
)

func needRoot(t testing.TB) {
	if os.Getuid() != 0 {
		t.Skip("needs root: the tree has other owners and device nodes")
	}
}

// capability is a file capability (VFS_CAP_REVISION_2) granting
// CAP_NET_BIND_SERVICE, permitted and effective.
var capability = []byte{
	0x01, 0x00, 0x00, 0x02, // revision 2, effective
	0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // permitted, inheritable
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
}

// makeTree builds a tree with every kind of file and metadata the copy
// must keep.
func makeTree(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := func(name string) string { return filepath.Join(root, name) }
	big := make([]byte, 3<<20+123)
	rand.New(rand.NewSource(1)).Read(big)

	must(os.MkdirAll(p("dir/sub"), 0o755))
	must(os.Mkdir(p("sticky"), 0o755))
	must(os.Mkdir(p("readonly"), 0o755))
	must(os.WriteFile(p("dir/sub/file"), []byte("hello"), 0o644))
	must(os.WriteFile(p("readonly/file"), []byte("ro"), 0o600))
	must(os.WriteFile(p("setuid"), []byte("#!/bin/sh\n"), 0o755))
	must(os.WriteFile(p("empty"), nil, 0o600))
	must(os.WriteFile(p("big"), big, 0o644))
	must(os.WriteFile(p("caps"), []byte("binary"), 0o755))

	sparse, err := os.Create(p("sparse"))
	must(err)
	_, err = sparse.WriteAt([]byte("in the middle"), 5<<20)
	must(err)
	must(sparse.Truncate(12 << 20))
	must(sparse.Close())

	must(os.WriteFile(p("link1"), []byte("linked"), 0o640))
	must(os.Link(p("link1"), p("link2")))
	must(os.Link(p("link1"), p("dir/link3")))
	must(os.Symlink("dir/sub/file", p("symlink")))
	must(os.Symlink("/etc/passwd", p("abs-symlink")))
	must(os.Symlink("nowhere", p("dangling")))
	must(os.Link(p("symlink"), p("symlink-hardlink")))
	must(unix.Mkfifo(p("fifo"), 0o640))
	must(unix.Mknod(p("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(p("loop"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 0))))
	must(unix.Mknod(p("socket"), unix.S_IFSOCK|0o755, 0))

	must(unix.Lchown(p("setuid"), 1234, 5678))
	must(unix.Chmod(p("setuid"), 0o6755))
	must(unix.Lchown(p("sticky"), 42, 43))
	must(unix.Chmod(p("sticky"), 0o1777))
	must(unix.Lchown(p("symlink"), 7, 8))
	must(unix.Lchown(p("fifo"), 9, 10))
	must(unix.Setxattr(p("dir/sub/file"), "user.greeting", []byte("hi"), 0))
	must(unix.Setxattr(p("dir"), "user.dir", []byte("d"), 0))
	must(unix.Setxattr(p("big"), "user.long", bytes.Repeat([]byte("x"), 1000), 0))
	must(unix.Setxattr(p("big"), "trusted.secret", []byte("t"), 0))
	must(unix.Lsetxattr(p("symlink"), "trusted.link", []byte("l"), 0))
	must(unix.Setxattr(p("caps"), "security.capability", capability, 0))
	must(unix.Chmod(p("readonly"), 0o555))

	// Times last, directories after what is in them.
	var paths []string
	filepath.Walk(root, func(path string, _ os.FileInfo, _ error) error {
		paths = append(paths, path)
		return nil
	})
	sort.Sort(sort.Reverse(sort.StringSlice(paths)))
	for n, path := range paths {
		ts := []unix.Timespec{
			{Sec: 1_000_000_000 + int64(n), Nsec: 111_111_111},
			{Sec: 1_500_000_000 + int64(n), Nsec: 222_222_222 + int64(n)},
		}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// statTree lstats every path under root without reading any file, which
// would move its access time.
func statTree(t *testing.T, root string) map[string]unix.Stat_t {
	t.Helper()
	stats := map[string]unix.Stat_t{}
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		stats[rel] = st
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return stats
}

// compareTrees fails t for every difference a container could notice
// between the copy dst and src, whose stats were taken before the copy
// read it. Hard links within dst must link to each other, not into src.
// Directory access times are not compared: listing a directory moves them.
func compareTrees(t *testing.T, dst, src string, srcStats map[string]unix.Stat_t) {
	t.Helper()
	dstStats := statTree(t, dst)
	byInode := map[uint64]uint64{} // source inode to copied inode
	for rel, s := range srcStats {
		d, ok := dstStats[rel]
		if !ok {
			t.Errorf("%s: not copied", rel)
			continue
		}
		sp, dp := filepath.Join(src, rel), filepath.Join(dst, rel)
		if s.Mode != d.Mode || s.Uid != d.Uid || s.Gid != d.Gid || s.Rdev != d.Rdev || s.Nlink != d.Nlink {
			t.Errorf("%s: mode %o uid %d gid %d rdev %d nlink %d, want %o %d %d %d %d",
				rel, d.Mode, d.Uid, d.Gid, d.Rdev, d.Nlink, s.Mode, s.Uid, s.Gid, s.Rdev, s.Nlink)
		}
		if s.Mtim != d.Mtim || (s.Mode&unix.S_IFMT != unix.S_IFDIR && s.Atim != d.Atim) {
			t.Errorf("%s: times %v %v, want %v %v", rel, d.Atim, d.Mtim, s.Atim, s.Mtim)
		}
		if s.Ino == d.Ino && s.Dev == d.Dev {
			t.Errorf("%s: copy shares the source's inode", rel)
		}
		if s.Nlink > 1 && s.Mode&unix.S_IFMT != unix.S_IFDIR {
			if prev, ok := byInode[s.Ino]; ok && prev != d.Ino {
				t.Errorf("%s: hard link to source inode %d copied to inode %d, another to %d", rel, s.Ino, d.Ino, prev)
			}
			byInode[s.Ino] = d.Ino
		}
		switch s.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			sb, _ := os.ReadFile(sp)
			db, err := os.ReadFile(dp)
			if err != nil || !bytes.Equal(sb, db) {
				t.Errorf("%s: contents differ (%d bytes, want %d): %v", rel, len(db), len(sb), err)
			}
			if s.Blocks < s.Size/512 && d.Blocks > s.Blocks+64 {
				t.Errorf("%s: sparse file filled in: %d blocks, source %d", rel, d.Blocks, s.Blocks)
			}
		case unix.S_IFLNK:
			st, _ := os.Readlink(sp)
			dt, err := os.Readlink(dp)
			if err != nil || st != dt {
				t.Errorf("%s: link to %q, want %q (%v)", rel, dt, st, err)
			}
		}
		if sx, dx := xattrs(t, sp), xattrs(t, dp); sx != dx {
			t.Errorf("%s: xattrs %s, want %s", rel, dx, sx)
		}
	}
	for rel := range dstStats {
		if _, ok := srcStats[rel]; !ok {
			t.Errorf("%s: in the copy only", rel)
		}
	}
}

func xattrs(t *testing.T, path string) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(path, buf)
	if err != nil {
		t.Fatalf("llistxattr %s: %v", path, err)
	}
	var out []string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 64<<10)
		vn, err := unix.Lgetxattr(path, name, v)
		if err != nil {
			t.Fatalf("lgetxattr %s %s: %v", path, name, err)
		}
		out = append(out, fmt.Sprintf("%s=%q", name, v[:vn]))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func TestCopyTree(t *testing.T) {
	needRoot(t)
	src, dst := filepath.Join(t.TempDir(), "src"), filepath.Join(t.TempDir(), "dst")
	if err := os.Mkdir(src, 0o711); err != nil {
		t.Fatal(err)
	}
	makeTree(t, src)
	if err := os.Mkdir(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	stats := statTree(t, src)
	if err := copyTree(context.Background(), dst, src); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, dst, src, stats)
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dst, "abs-symlink"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("absolute symlink followed: mode %o, %v", st.Mode, err)
	}
}

// TestCopyFileFallback copies through user space, as on filesystems that
// neither clone nor copy_file_range.
func TestCopyFileFallback(t *testing.T) {
	needRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	makeTree(t, src)
	var yes atomic.Bool
	yes.Store(true)
	fc := fileCopier{noClone: &yes, noCopyRange: &yes}
	for _, name := range []string{"big", "sparse", "empty", "caps", "setuid"} {
		sp := filepath.Join(src, name)
		stats := statTree(t, sp)
		st := stats["."]
		if err := fc.copyFile(filepath.Join(dst, name), sp, &st); err != nil {
			t.Fatal(err)
		}
		compareTrees(t, filepath.Join(dst, name), sp, stats)
	}
}

func TestCopyTreeCanceled(t *testing.T) {
	needRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	makeTree(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := copyTree(ctx, dst, src); !errors.Is(err, context.Canceled) {
		t.Fatalf("copy with a canceled context: %v", err)
	}
}

// TestPrepareCopiesParent checks the copy end to end: a tree unpacked into
// a snapshot arrives whole in its child.
func TestPrepareCopiesParent(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	s, err := NewSnapshotter(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mounts, err := s.Prepare(ctx, "base-key", "")
	if err != nil {
		t.Fatal(err)
	}
	var src string
	err = mount.WithTempMount(ctx, mounts, func(root string) error {
		makeTree(t, root)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	src = mounts[0].Source
	stats := statTree(t, src)
	if err := s.Commit(ctx, "base", "base-key"); err != nil {
		t.Fatal(err)
	}
	info, _ := s.Stat(ctx, "base")
	if info.Kind != snapshots.KindCommitted {
		t.Fatalf("base: %+v", info)
	}
	child, err := s.Prepare(ctx, "child", "base")
	if err != nil {
		t.Fatal(err)
	}
	if len(child) != 1 || child[0].Type != "bind" || fmt.Sprint(child[0].Options) != "[rw rbind]" {
		t.Fatalf("mounts: %+v", child)
	}
	compareTrees(t, child[0].Source, src, stats)
}

func TestViewMounts(t *testing.T) {
	ctx := context.Background()
	s, err := NewSnapshotter(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Prepare(ctx, "k", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "base", "k"); err != nil {
		t.Fatal(err)
	}
	active, _ := s.Prepare(ctx, "a", "base")
	view, err := s.View(ctx, "v", "base")
	if err != nil {
		t.Fatal(err)
	}
	// A view of a parent binds the parent itself, read-only: no copy.
	if fmt.Sprint(view[0].Options) != "[ro rbind]" || view[0].Source == active[0].Source ||
		filepath.Dir(view[0].Source) != filepath.Dir(active[0].Source) {
		t.Errorf("view mounts %+v, active %+v", view, active)
	}
	empty, err := s.View(ctx, "v2", "")
	if err != nil || fmt.Sprint(empty[0].Options) != "[ro rbind]" {
		t.Errorf("view of nothing: %+v, %v", empty, err)
	}
	if fi, err := os.Stat(empty[0].Source); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("empty snapshot directory: %v, %v", fi.Mode(), err)
	}
}

func BenchmarkCopyTree(b *testing.B) {
	needRoot(b)
	src := b.TempDir()
	data := make([]byte, 16<<10)
	rand.New(rand.NewSource(1)).Read(data)
	for d := range 50 {
		dir := filepath.Join(src, fmt.Sprint("d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 40 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprint("f", f)), data[:rand.Intn(len(data))], 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(src, "large"), bytes.Repeat(data, 4096), 0o644); err != nil { // 64 MiB
		b.Fatal(err)
	}
	defer func(n int) { copyWorkers = n }(copyWorkers)
	for _, workers := range []int{1, 4, copyWorkers} {
		b.Run(fmt.Sprint("workers=", workers), func(b *testing.B) {
			copyWorkers = workers
			dir := b.TempDir()
			for i := range b.N {
				dst := filepath.Join(dir, fmt.Sprint(i))
				os.Mkdir(dst, 0o700)
				if err := copyTree(context.Background(), dst, src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
