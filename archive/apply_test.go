package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func lstat(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat: %v", err)
	}
	return &st
}

func TestApplyEntryKinds(t *testing.T) {
	root := t.TempDir()
	mtime := time.Unix(1600000000, 123456789)
	atime := time.Unix(1650000000, 5)
	suid := fileEnt("bin/su", "setuid")
	suid.Mode, suid.Uid, suid.Gid = 0o4755, 1000, 1001
	ro := fileEnt("etc/ro", "read only")
	ro.Mode = 0o444
	sticky := dirEnt("tmp/")
	sticky.Mode = 0o1777
	private := dirEnt("private/")
	private.Mode, private.Uid, private.Gid, private.ModTime, private.AccessTime = 0o700, 7, 8, mtime, atime
	timed := fileEnt("private/timed", "t")
	timed.ModTime, timed.AccessTime = mtime, atime
	big := fileEnt("big", strings.Repeat("0123456789abcdef", 3<<16)) // 3 MiB, several buffers
	xf := fileEnt("xattr", "x")
	xf.PAXRecords = map[string]string{"SCHILY.xattr.user.color": "blue", "SCHILY.xattr.trusted.evil": "1"}
	xd := dirEnt("xdir/")
	xd.PAXRecords = map[string]string{"SCHILY.xattr.user.kind": "dir"}
	sl := symlinkEnt("bin/sh", "/bin/su")
	sl.Uid, sl.Gid, sl.ModTime = 3, 4, mtime
	// Hardlink headers carry their inode's attributes, which Apply sets
	// again, as tar writers repeat them.
	suLink := linkEnt("bin/su2", "bin/su")
	suLink.Mode, suLink.Uid, suLink.Gid = suid.Mode, suid.Uid, suid.Gid
	shLink := linkEnt("bin/sh2", "bin/sh")
	shLink.Uid, shLink.Gid, shLink.ModTime = sl.Uid, sl.Gid, sl.ModTime
	entries := []ent{
		dirEnt("bin/"), suid, sl, suLink, shLink,
		ro, sticky, private, timed, big, xf, xd, fileEnt("empty", ""),
		{Header: tar.Header{Typeflag: tar.TypeFifo, Name: "fifo", Mode: 0o620, Uid: 5, Gid: 6, ModTime: mtime}},
		{Header: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}},
		{Header: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/loop9", Mode: 0o660, Devmajor: 7, Devminor: 9}},
		fileEnt("implicit/parent/file", "p"),
		// user.* xattrs cannot be set on these; they are skipped.
		{Header: tar.Header{Typeflag: tar.TypeFifo, Name: "xfifo", Mode: 0o600, PAXRecords: map[string]string{"SCHILY.xattr.user.a": "b"}}},
		{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: "xlink", Linkname: "xattr", PAXRecords: map[string]string{"SCHILY.xattr.user.a": "b"}}},
		{Header: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "x"}}},
		dirEnt("./"),
	}
	mustApply(t, root, entries)

	st := lstat(t, filepath.Join(root, "bin/su"))
	if st.Mode&0o7777 != 0o4755 || st.Uid != 1000 || st.Gid != 1001 {
		t.Errorf("bin/su: mode %o owner %d:%d, want 4755 1000:1001", st.Mode&0o7777, st.Uid, st.Gid)
	}
	if got := readFile(t, filepath.Join(root, "bin/su")); got != "setuid" {
		t.Errorf("bin/su = %q", got)
	}
	sameInode(t, filepath.Join(root, "bin/su"), filepath.Join(root, "bin/su2"))
	sameInode(t, filepath.Join(root, "bin/sh"), filepath.Join(root, "bin/sh2")) // a link of the symlink itself
	if target, _ := os.Readlink(filepath.Join(root, "bin/sh")); target != "/bin/su" {
		t.Errorf("bin/sh -> %q", target)
	}
	st = lstat(t, filepath.Join(root, "bin/sh"))
	if st.Uid != 3 || st.Gid != 4 || st.Mtim.Sec != mtime.Unix() {
		t.Errorf("symlink owner %d:%d mtime %d", st.Uid, st.Gid, st.Mtim.Sec)
	}
	if m := lstat(t, filepath.Join(root, "etc/ro")).Mode & 0o7777; m != 0o444 {
		t.Errorf("etc/ro mode %o", m)
	}
	if m := lstat(t, filepath.Join(root, "tmp")).Mode & 0o7777; m != 0o1777 {
		t.Errorf("tmp mode %o", m)
	}
	st = lstat(t, filepath.Join(root, "private"))
	if st.Mode&0o7777 != 0o700 || st.Uid != 7 || st.Gid != 8 {
		t.Errorf("private: mode %o owner %d:%d", st.Mode&0o7777, st.Uid, st.Gid)
	}
	// The directory's times survive the file created in it afterwards.
	if st.Mtim != unix.NsecToTimespec(mtime.UnixNano()) || st.Atim != unix.NsecToTimespec(atime.UnixNano()) {
		t.Errorf("private times: atime %v mtime %v", st.Atim, st.Mtim)
	}
	st = lstat(t, filepath.Join(root, "private/timed"))
	if st.Mtim != unix.NsecToTimespec(mtime.UnixNano()) || st.Atim != unix.NsecToTimespec(atime.UnixNano()) {
		t.Errorf("file times: atime %v mtime %v", st.Atim, st.Mtim)
	}
	if got := readFile(t, filepath.Join(root, "big")); got != big.data {
		t.Errorf("big: %d bytes, want %d", len(got), len(big.data))
	}
	if x := listXattrsPath(filepath.Join(root, "xattr")); x != "user.color=blue" {
		t.Errorf("xattrs %q, want user.color=blue only", x)
	}
	if x := listXattrsPath(filepath.Join(root, "xdir")); x != "user.kind=dir" {
		t.Errorf("dir xattrs %q", x)
	}
	if st := lstat(t, filepath.Join(root, "empty")); st.Size != 0 || st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("empty: %+v", st)
	}
	st = lstat(t, filepath.Join(root, "fifo"))
	if st.Mode != unix.S_IFIFO|0o620 || st.Uid != 5 || st.Gid != 6 || st.Mtim.Sec != mtime.Unix() {
		t.Errorf("fifo: mode %o owner %d:%d", st.Mode, st.Uid, st.Gid)
	}
	st = lstat(t, filepath.Join(root, "dev/null"))
	if st.Mode != unix.S_IFCHR|0o666 || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		t.Errorf("dev/null: mode %o rdev %d:%d", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	st = lstat(t, filepath.Join(root, "dev/loop9"))
	if st.Mode != unix.S_IFBLK|0o660 || unix.Major(st.Rdev) != 7 || unix.Minor(st.Rdev) != 9 {
		t.Errorf("dev/loop9: mode %o", st.Mode)
	}
	if m := lstat(t, filepath.Join(root, "implicit/parent")).Mode; m != unix.S_IFDIR|0o755 {
		t.Errorf("implicit parent mode %o", m)
	}
}

func TestApplyReplaces(t *testing.T) {
	root := t.TempDir()
	mustApply(t, root, []ent{fileEnt("a", "file"), dirEnt("b/"), fileEnt("b/c", "c"), symlinkEnt("l", "a"), dirEnt("d/"), fileEnt("d/keep", "k")})
	d := dirEnt("d/")
	d.Mode = 0o711
	mustApply(t, root, []ent{dirEnt("a/"), fileEnt("a/in", "in"), fileEnt("b", "now a file"), fileEnt("l", "not a link"), d})
	if !lstatIsDir(filepath.Join(root, "a")) || readFile(t, filepath.Join(root, "a/in")) != "in" {
		t.Error("file a not replaced by directory")
	}
	if readFile(t, filepath.Join(root, "b")) != "now a file" {
		t.Error("directory b not replaced by file")
	}
	if st := lstat(t, filepath.Join(root, "l")); st.Mode&unix.S_IFMT != unix.S_IFREG || readFile(t, filepath.Join(root, "a/in")) != "in" {
		t.Error("symlink l not replaced by file")
	}
	// A directory merges with the one there, taking the new attributes.
	if readFile(t, filepath.Join(root, "d/keep")) != "k" || lstat(t, filepath.Join(root, "d")).Mode&0o7777 != 0o711 {
		t.Error("directory d not merged")
	}
}

func lstatIsDir(p string) bool {
	var st unix.Stat_t
	return unix.Lstat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
}

// lowerLayer and upperLayer exercise whiteouts across two layers.
func lowerLayer() []ent {
	p := dirEnt("p/")
	p.Mode, p.Uid = 0o750, 7
	return []ent{
		dirEnt("a/"), fileEnt("a/x", "x"), fileEnt("a/y", "y"),
		dirEnt("b/"), fileEnt("b/z", "z"), dirEnt("b/deep/"), fileEnt("b/deep/f", "f"),
		fileEnt("c", "c"),
		dirEnt("d/"), fileEnt("d/old", "old"), dirEnt("d/sub/"), fileEnt("d/sub/lower", "lower"),
		dirEnt("e/"), fileEnt("e/f", "f"),
		p, fileEnt("p/lowerfile", "l"),
	}
}

func upperLayer() []ent {
	return []ent{
		whiteoutEnt("a", "x"),
		whiteoutEnt("", "c"),
		// Opaque first, as buildkit writes it.
		dirEnt("b/"), opaqueEnt("b"), fileEnt("b/new", "new"),
		// Opaque after this layer's own entries, which must survive it,
		// including a directory merged with the lower one.
		dirEnt("d/"), fileEnt("d/mine", "mine"), dirEnt("d/sub/"), fileEnt("d/sub/upper", "upper"), opaqueEnt("d"),
		// A whole directory deleted.
		whiteoutEnt("", "e"),
		// A whiteout for something that never existed.
		whiteoutEnt("a", "nothing"),
		// A parent the layer does not list.
		fileEnt("p/q/new", "n"),
	}
}

// wantMerged is what the two layers make, path -> content ("/" for dirs).
var wantMerged = map[string]string{
	"a": "/", "a/y": "y",
	"b": "/", "b/new": "new",
	"d": "/", "d/mine": "mine", "d/sub": "/", "d/sub/upper": "upper",
	"p": "/", "p/lowerfile": "l", "p/q": "/", "p/q/new": "n",
}

func checkTree(t *testing.T, root string, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if fi.IsDir() {
			got[rel] = "/"
		} else {
			got[rel] = readFile(t, p)
		}
		return nil
	})
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s", k)
		}
	}
}

func TestApplyWhiteouts(t *testing.T) {
	for _, walk := range []bool{false, true} {
		t.Run(map[bool]string{false: "openat2", true: "walk"}[walk], func(t *testing.T) {
			defer func(old bool) { forceWalk = old }(forceWalk)
			forceWalk = walk
			root := t.TempDir()
			mustApply(t, root, lowerLayer())
			mustApply(t, root, upperLayer())
			checkTree(t, root, wantMerged)
		})
	}
}

// TestApplyOverlay applies the upper layer onto an overlay's upper
// directory with whiteouts converted, mounts the overlay and checks that
// the merged view is what applying both layers plainly gives.
func TestApplyOverlay(t *testing.T) {
	dir := t.TempDir()
	lower, upper, work, merged := filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{lower, upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mustApply(t, lower, lowerLayer())
	mustApply(t, upper, upperLayer(), WithConvertWhiteout(OverlayConvertWhiteout), WithParents([]string{lower}))

	// The upper directory holds overlayfs' own whiteouts.
	if st := lstat(t, filepath.Join(upper, "c")); st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("upper/c is not a whiteout device: mode %o", st.Mode)
	}
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(upper, "b"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("upper/b not opaque: %q, %v", buf[:n], err)
	}
	// A parent the layer did not list takes its attributes from below.
	if st := lstat(t, filepath.Join(upper, "p")); st.Mode&0o7777 != 0o750 || st.Uid != 7 {
		t.Errorf("upper/p: mode %o uid %d, want 750 uid 7 from the lower", st.Mode&0o7777, st.Uid)
	}

	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Skipf("mount overlay: %v", err)
	}
	defer unix.Unmount(merged, unix.MNT_DETACH)
	checkTree(t, merged, wantMerged)
	if st := lstat(t, filepath.Join(merged, "p")); st.Mode&0o7777 != 0o750 || st.Uid != 7 {
		t.Errorf("merged p: mode %o uid %d", st.Mode&0o7777, st.Uid)
	}
}

func TestApplySize(t *testing.T) {
	b := tarBytes(t, fileEnt("f", "data"))
	b = append(b, make([]byte, 10000)...) // padding after the end marker
	n, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(b)) {
		t.Errorf("Apply returned %d, want %d", n, len(b))
	}
}

func TestApplyCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Apply(ctx, t.TempDir(), bytes.NewReader(tarBytes(t, fileEnt("f", "data"))))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestApplyTruncated(t *testing.T) {
	b := tarBytes(t, fileEnt("f", strings.Repeat("x", 4096)))
	if _, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(b[:1500])); err == nil {
		t.Error("truncated tar applied without error")
	}
}

func TestApplyNoSameOwner(t *testing.T) {
	root := t.TempDir()
	f := fileEnt("f", "x")
	f.Uid, f.Gid = 1234, 1234
	mustApply(t, root, []ent{f}, WithNoSameOwner())
	if st := lstat(t, filepath.Join(root, "f")); int(st.Uid) != os.Getuid() {
		t.Errorf("owner %d, want %d", st.Uid, os.Getuid())
	}
}

func TestApplyLongName(t *testing.T) {
	root := t.TempDir()
	name := strings.Repeat("d/", 200) + strings.Repeat("n", 255)
	mustApply(t, root, []ent{fileEnt(name, "deep")})
	if got := readFile(t, filepath.Join(root, name)); got != "deep" {
		t.Errorf("got %q", got)
	}
}
