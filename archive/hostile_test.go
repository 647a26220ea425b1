package archive

import (
	"archive/tar"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// hostileCase is a layer that tries to reach outside root. Contained is
// checked for every case; check, if set, looks at what root holds, and
// wantErr says whether Apply must fail (nil: either way).
type hostileCase struct {
	name    string
	entries func(s *sandbox) []ent
	wantErr *bool
	check   func(t *testing.T, s *sandbox)
}

var (
	yes = new(bool)
	no  = new(bool)
)

func init() { *yes = true }

func hostileCases() []hostileCase {
	pwned := func(name string) ent { return fileEnt(name, "pwned") }
	isFile := func(rel, data string) func(*testing.T, *sandbox) {
		return func(t *testing.T, s *sandbox) {
			if got := readFile(t, filepath.Join(s.root, rel)); got != data {
				t.Errorf("%s = %q, want %q", rel, got, data)
			}
		}
	}
	return []hostileCase{
		{name: "dotdot", entries: func(s *sandbox) []ent { return []ent{pwned("../outside/x")} },
			wantErr: no, check: isFile("outside/x", "pwned")},
		{name: "dotdot deep", entries: func(s *sandbox) []ent { return []ent{pwned("a/../../../../../../outside/x")} },
			wantErr: no, check: isFile("outside/x", "pwned")},
		{name: "dotdot only", entries: func(s *sandbox) []ent { return []ent{pwned(".."), pwned("../.."), dirEnt("../")} },
			wantErr: no},
		{name: "absolute", entries: func(s *sandbox) []ent { return []ent{pwned(s.outside + "/x")} },
			wantErr: no, check: func(t *testing.T, s *sandbox) { isFile(s.outside+"/x", "pwned")(t, s) }},
		{name: "symlink absolute then write through", entries: func(s *sandbox) []ent {
			return []ent{symlinkEnt("l", s.outside), pwned("l/x"), pwned("l/sub/secret")}
		}, wantErr: no},
		{name: "symlink relative then write through", entries: func(s *sandbox) []ent {
			return []ent{symlinkEnt("l", "../../../../../outside"), pwned("l/x"), pwned("l/new")}
		}, wantErr: no, check: isFile("outside/new", "pwned")},
		{name: "symlink to parent then write through", entries: func(s *sandbox) []ent {
			return []ent{symlinkEnt("l", ".."), pwned("l/outside/x"), symlinkEnt("m", "/.."), pwned("m/outside/passwd")}
		}, wantErr: no, check: isFile("outside/x", "pwned")},
		{name: "symlink in subdir to parents", entries: func(s *sandbox) []ent {
			return []ent{dirEnt("a/"), dirEnt("a/b/"), symlinkEnt("a/b/up", "../../../../.."), pwned("a/b/up/outside/x")}
		}, wantErr: no, check: isFile("outside/x", "pwned")},
		{name: "symlink chain", entries: func(s *sandbox) []ent {
			return []ent{symlinkEnt("a", "b"), symlinkEnt("b", "c/../.."), dirEnt("c/"), symlinkEnt("d", "a/../outside"), pwned("d/x"), pwned("a/outside/passwd")}
		}, wantErr: no},
		{name: "symlink chain absolute hops", entries: func(s *sandbox) []ent {
			return []ent{symlinkEnt("a", "/b"), symlinkEnt("b", s.dir), pwned("a/outside/x")}
		}, wantErr: no},
		{name: "symlink loop", entries: func(s *sandbox) []ent {
			return []ent{symlinkEnt("a", "b"), symlinkEnt("b", "a"), pwned("a/x")}
		}, wantErr: yes},
		{name: "symlink to file outside then overwrite", entries: func(s *sandbox) []ent {
			return []ent{symlinkEnt("l", s.outside+"/x"), pwned("l"), symlinkEnt("m", "../outside/x"), pwned("m")}
		}, wantErr: no, check: isFile("l", "pwned")},
		{name: "symlink to outside then replace by each type", entries: func(s *sandbox) []ent {
			var es []ent
			for i, e := range []ent{dirEnt("l0"), symlinkEnt("l1", "/"), linkEnt("l2", "f"), {Header: tar.Header{Typeflag: tar.TypeFifo, Name: "l3", Mode: 0o600}},
				{Header: tar.Header{Typeflag: tar.TypeChar, Name: "l4", Mode: 0o600, Devmajor: 1, Devminor: 3}}, pwned("l5")} {
				es = append(es, symlinkEnt(fmt.Sprintf("l%d", i), s.outside+"/x"))
				if i == 2 {
					es = append(es, pwned("f"))
				}
				es = append(es, e)
			}
			return es
		}, wantErr: no},
		{name: "symlink to /etc then write through", entries: func(s *sandbox) []ent {
			return []ent{symlinkEnt("e", "/etc"), pwned("e/" + etcProbe), symlinkEnt("up", "../../../../../../../../etc"), pwned("up/" + etcProbe)}
		}, wantErr: no, check: func(t *testing.T, s *sandbox) {
			if exists("/etc/" + etcProbe) {
				os.Remove("/etc/" + etcProbe)
				t.Fatalf("wrote /etc/%s", etcProbe)
			}
		}},
		{name: "hardlink outside relative", entries: func(s *sandbox) []ent {
			return []ent{linkEnt("h", "../outside/x")}
		}, wantErr: yes},
		{name: "hardlink outside absolute", entries: func(s *sandbox) []ent {
			return []ent{linkEnt("h", s.outside+"/x")}
		}, wantErr: yes},
		{name: "hardlink etc passwd", entries: func(s *sandbox) []ent {
			return []ent{linkEnt("h", "/etc/passwd")}
		}, wantErr: yes},
		{name: "hardlink dotdot inside", entries: func(s *sandbox) []ent {
			return []ent{pwned("outside/x"), linkEnt("h", "a/../../outside/x")}
		}, wantErr: no, check: func(t *testing.T, s *sandbox) {
			sameInode(t, filepath.Join(s.root, "h"), filepath.Join(s.root, "outside/x"))
		}},
		{name: "hardlink through symlink", entries: func(s *sandbox) []ent {
			return []ent{symlinkEnt("l", s.outside), linkEnt("h", "l/x")}
		}, wantErr: yes},
		{name: "hardlink through relative symlink", entries: func(s *sandbox) []ent {
			return []ent{symlinkEnt("l", "../outside"), linkEnt("h", "l/x")}
		}, wantErr: yes},
		{name: "hardlink to symlink pointing outside", entries: func(s *sandbox) []ent {
			l := linkEnt("h", "l")
			l.Mode, l.Uid, l.Gid = 0o4777, 1234, 1234
			return []ent{symlinkEnt("l", s.outside+"/x"), l}
		}, wantErr: no, check: func(t *testing.T, s *sandbox) {
			if target, err := os.Readlink(filepath.Join(s.root, "h")); err != nil || target != s.outside+"/x" {
				t.Errorf("h: readlink = %q, %v; want a hardlink of the symlink", target, err)
			}
		}},
		{name: "hardlink to root", entries: func(s *sandbox) []ent { return []ent{linkEnt("h", "."), linkEnt("h", "/..")} },
			wantErr: yes},
		{name: "whiteout dotdot", entries: func(s *sandbox) []ent { return []ent{fileEnt("a/.wh...", "")} },
			wantErr: yes},
		{name: "whiteout dot", entries: func(s *sandbox) []ent { return []ent{fileEnt("outside/.wh..", "")} },
			wantErr: yes},
		{name: "whiteout empty", entries: func(s *sandbox) []ent { return []ent{fileEnt(".wh.", "")} },
			wantErr: yes},
		{name: "whiteout escaping name", entries: func(s *sandbox) []ent {
			return []ent{fileEnt("../.wh.outside", ""), fileEnt("../../.wh.x", "")}
		}, wantErr: no},
		{name: "whiteout through symlink", entries: func(s *sandbox) []ent {
			return []ent{symlinkEnt("l", s.outside), whiteoutEnt("l", "x"), whiteoutEnt("l", "sub"), whiteoutEnt("l", "passwd")}
		}, wantErr: no},
		{name: "whiteout through relative symlink", entries: func(s *sandbox) []ent {
			return []ent{symlinkEnt("l", "../outside"), whiteoutEnt("l", "x"), symlinkEnt("m", "../../../.."), whiteoutEnt("m/outside", "sub")}
		}, wantErr: no},
		{name: "whiteout of symlink", entries: func(s *sandbox) []ent {
			return []ent{symlinkEnt("l", s.outside), whiteoutEnt("", "l"), symlinkEnt("m", s.outside+"/x"), whiteoutEnt("", "m")}
		}, wantErr: no, check: func(t *testing.T, s *sandbox) {
			for _, n := range []string{"l", "m"} {
				var st unix.Stat_t
				err := unix.Lstat(filepath.Join(s.root, n), &st)
				if s.overlay {
					if err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
						t.Errorf("%s: want an overlay whiteout, got mode %o err %v", n, st.Mode, err)
					}
				} else if err == nil {
					t.Errorf("%s: whited-out symlink still there", n)
				}
			}
		}},
		{name: "opaque through symlink", entries: func(s *sandbox) []ent {
			return []ent{symlinkEnt("l", s.outside), opaqueEnt("l"), symlinkEnt("m", "../outside"), opaqueEnt("m"), symlinkEnt("n", "../outside/sub"), opaqueEnt("n")}
		}, wantErr: no},
		{name: "opaque of parent", entries: func(s *sandbox) []ent {
			return []ent{opaqueEnt(".."), opaqueEnt("/"), opaqueEnt("../../..")}
		}, wantErr: no},
		{name: "symlink replacing directory", entries: func(s *sandbox) []ent {
			return []ent{dirEnt("d/"), fileEnt("d/f", "inside"), symlinkEnt("d", s.outside), pwned("d/x"), dirEnt("d/sub/"), pwned("d/sub/secret"),
				symlinkEnt("d", "../outside"), pwned("d/passwd")}
		}, wantErr: no},
		{name: "dir through symlink", entries: func(s *sandbox) []ent {
			d := dirEnt("l/sub/")
			d.Mode = 0o700
			return []ent{symlinkEnt("l", s.outside), d, dirEnt("m/"), symlinkEnt("m/up", "../.."), dirEnt("m/up/outside/")}
		}, wantErr: no},
		{name: "devices and fifos through symlink", entries: func(s *sandbox) []ent {
			return []ent{symlinkEnt("l", s.outside),
				{Header: tar.Header{Typeflag: tar.TypeChar, Name: "l/x", Mode: 0o666, Devmajor: 1, Devminor: 3}},
				{Header: tar.Header{Typeflag: tar.TypeBlock, Name: "l/sub", Mode: 0o666, Devmajor: 7, Devminor: 0}},
				{Header: tar.Header{Typeflag: tar.TypeFifo, Name: "l/passwd", Mode: 0o666}}}
		}, wantErr: no},
		{name: "xattrs and metadata through symlink", entries: func(s *sandbox) []ent {
			f := pwned("l/x")
			f.Uid, f.Gid, f.Mode = 4242, 4242, 0o6777
			f.PAXRecords = map[string]string{"SCHILY.xattr.user.evil": "1"}
			return []ent{symlinkEnt("l", s.outside), f}
		}, wantErr: no},
		{name: "file through file", entries: func(s *sandbox) []ent {
			return []ent{pwned("f"), pwned("f/x")}
		}, wantErr: yes},
		{name: "long component", entries: func(s *sandbox) []ent {
			return []ent{pwned(strings.Repeat("a", 300))}
		}, wantErr: yes},
		{name: "long path", entries: func(s *sandbox) []ent {
			deep := strings.Repeat("abcdefghi/", 600) // 6000 bytes, past PATH_MAX
			return []ent{pwned(deep + "x"), symlinkEnt("l", "/"+deep[:4000]), pwned("l/y"), symlinkEnt(deep+"up", strings.Repeat("../", 1300)+"outside"), pwned(deep + "up/x")}
		}, wantErr: no},
		{name: "long link target", entries: func(s *sandbox) []ent {
			return []ent{symlinkEnt("l", strings.Repeat("../", 2000)+"outside"), pwned("l/x")}
		}, wantErr: nil},
		{name: "duplicates", entries: func(s *sandbox) []ent {
			return []ent{pwned("x"), pwned("x"), dirEnt("x/"), dirEnt("x/"), pwned("x/y"), symlinkEnt("x", s.outside), symlinkEnt("x", s.outside),
				pwned("x/y"), linkEnt("z", "x"), linkEnt("z", "x"), pwned("x")}
		}, wantErr: no},
		{name: "hardlink to self", entries: func(s *sandbox) []ent { return []ent{pwned("x"), linkEnt("x", "x")} }, wantErr: yes},
	}
}

// etcProbe is a name no /etc has; a layer that escapes to /etc creates it.
var etcProbe = fmt.Sprintf("containerd-archive-test-%d", rand.Uint64())

func sameInode(t *testing.T, a, b string) {
	t.Helper()
	var sa, sb unix.Stat_t
	if err := unix.Lstat(a, &sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(b, &sb); err != nil {
		t.Fatal(err)
	}
	if sa.Ino != sb.Ino {
		t.Errorf("%s and %s are not one inode", a, b)
	}
}

func TestApplyHostile(t *testing.T) {
	for _, walk := range []bool{false, true} {
		for _, convert := range []bool{false, true} {
			for _, tc := range hostileCases() {
				name := fmt.Sprintf("%s/walk=%v/overlay=%v", tc.name, walk, convert)
				t.Run(name, func(t *testing.T) {
					defer func(old bool) { forceWalk = old }(forceWalk)
					forceWalk = walk
					s := newSandbox(t)
					var opts []ApplyOpt
					s.overlay = convert
					if convert {
						opts = append(opts, WithConvertWhiteout(OverlayConvertWhiteout))
					}
					etcBefore := statString(t, "/etc/passwd")
					err := s.checkContained(t, tc.entries(s), opts...)
					if tc.wantErr != nil && (err != nil) != *tc.wantErr {
						t.Errorf("Apply error = %v, want error %v", err, *tc.wantErr)
					}
					if after := statString(t, "/etc/passwd"); after != etcBefore {
						t.Errorf("/etc/passwd changed: %s -> %s", etcBefore, after)
					}
					if tc.check != nil {
						tc.check(t, s)
					}
				})
			}
		}
	}
}

func statString(t *testing.T, p string) string {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return err.Error()
	}
	return fmt.Sprintf("ino=%d nlink=%d mode=%o uid=%d gid=%d mtime=%v ctime=%v", st.Ino, st.Nlink, st.Mode, st.Uid, st.Gid, st.Mtim, st.Ctim)
}
