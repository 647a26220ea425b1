package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ent is one tar entry for tests; data is a regular file's content.
type ent struct {
	tar.Header
	data string
}

var testTime = time.Unix(1700000000, 0)

func fileEnt(name, data string) ent {
	return ent{Header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: testTime}, data: data}
}

func dirEnt(name string) ent {
	return ent{Header: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: testTime}}
}

func symlinkEnt(name, target string) ent {
	return ent{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: testTime}}
}

func linkEnt(name, target string) ent {
	return ent{Header: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644, ModTime: testTime}}
}

func whiteoutEnt(dir, name string) ent {
	return fileEnt(filepath.Join(dir, WhiteoutPrefix+name), "")
}

func opaqueEnt(dir string) ent {
	return fileEnt(filepath.Join(dir, WhiteoutOpaqueDir), "")
}

// tarBytes writes entries as a PAX tar. Names are written verbatim.
func tarBytes(t testing.TB, entries ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.Header
		if h.Format == tar.FormatUnknown {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("write header %q: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(e.data)); err != nil {
			t.Fatalf("write %q: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func apply(t testing.TB, root string, entries []ent, opts ...ApplyOpt) error {
	t.Helper()
	b := tarBytes(t, entries...)
	n, err := Apply(context.Background(), root, bytes.NewReader(b), opts...)
	if err == nil && n != int64(len(b)) {
		t.Fatalf("Apply read %d bytes of %d", n, len(b))
	}
	return err
}

func mustApply(t testing.TB, root string, entries []ent, opts ...ApplyOpt) {
	t.Helper()
	if err := apply(t, root, entries, opts...); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// sandbox is a temp dir holding root, the directory applied to, and
// outside, a sentinel tree beside it that no layer may touch.
type sandbox struct {
	dir, root, outside string
	overlay            bool // whiteouts are converted
}

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	return newSandboxIn(t, t.TempDir())
}

// newSandboxIn makes the sandbox in dir, which must be empty.
func newSandboxIn(t testing.TB, dir string) *sandbox {
	t.Helper()
	s := &sandbox{dir: dir, root: filepath.Join(dir, "root"), outside: filepath.Join(dir, "outside")}
	for _, d := range []string{s.root, s.outside, filepath.Join(s.outside, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range map[string]string{
		"passwd":     "root:x:0:0::/root:/bin/sh\n",
		"x":          "sentinel x\n",
		"sub/secret": "secret\n",
	} {
		if err := os.WriteFile(filepath.Join(s.outside, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("passwd", filepath.Join(s.outside, "plink")); err != nil {
		t.Fatal(err)
	}
	return s
}

// snapshot describes everything under dir except skip, in sorted order:
// type, mode, owner, size, mtime, content hash, link target, xattrs.
func snapshot(t testing.TB, dir string, skip ...string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		for _, s := range skip {
			if p == s {
				return filepath.SkipDir
			}
		}
		lines = append(lines, describe(t, dir, p))
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func describe(t testing.TB, base, p string) string {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	rel, _ := filepath.Rel(base, p)
	s := fmt.Sprintf("%s mode=%o uid=%d gid=%d nlink=%d mtime=%d.%09d", rel, st.Mode, st.Uid, st.Gid, st.Nlink, st.Mtim.Sec, st.Mtim.Nsec)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		s += fmt.Sprintf(" size=%d sha=%s", len(b), hex.EncodeToString(sum[:8]))
	case unix.S_IFLNK:
		target, _ := os.Readlink(p)
		s += " -> " + target
	case unix.S_IFCHR, unix.S_IFBLK:
		s += fmt.Sprintf(" dev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	if x := listXattrsPath(p); x != "" {
		s += " xattrs=" + x
	}
	return s
}

func listXattrsPath(p string) string {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz == 0 {
		return ""
	}
	buf := make([]byte, sz)
	sz, _ = unix.Llistxattr(p, buf)
	var out []string
	for _, k := range strings.Split(string(buf[:sz]), "\x00") {
		if k == "" || strings.HasPrefix(k, "security.selinux") {
			continue
		}
		v := make([]byte, 256)
		n, _ := unix.Lgetxattr(p, k, v)
		if n < 0 {
			n = 0
		}
		out = append(out, k+"="+string(v[:n]))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// outsideState is what must not change: the sandbox minus root.
func (s *sandbox) outsideState(t testing.TB) string {
	return snapshot(t, s.dir, s.root)
}

// checkContained applies entries onto root and fails the test if anything
// outside root changed. The apply may fail; its error is returned.
func (s *sandbox) checkContained(t testing.TB, entries []ent, opts ...ApplyOpt) error {
	t.Helper()
	before := s.outsideState(t)
	err := apply(t, s.root, entries, opts...)
	if after := s.outsideState(t); after != before {
		t.Errorf("outside root changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	return err
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return !errors.Is(err, fs.ErrNotExist)
}
