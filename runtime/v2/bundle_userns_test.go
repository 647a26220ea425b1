package v2

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A bundle whose spec maps gid 0 lets that gid search it (runc, in the
// user namespace, reaches the rootfs through it); others stay private.
func TestBundleForUserns(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("chown needs root")
	}
	for name, tc := range map[string]struct {
		spec string
		gid  uint32
		mode os.FileMode
	}{
		"no spec":        {"", 0, 0o700},
		"no mappings":    {`{"linux":{}}`, 0, 0o700},
		"gid 0 mapped":   {`{"linux":{"gidMappings":[{"containerID":5,"hostID":9,"size":1},{"containerID":0,"hostID":100000,"size":65536}]}}`, 100000, 0o710},
		"gid 0 unmapped": {`{"linux":{"gidMappings":[{"containerID":1,"hostID":100000,"size":10}]}}`, 0, 0o700},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			b, err := newBundle(filepath.Join(dir, "root"), filepath.Join(dir, "state"), "ns", "id", []byte(tc.spec))
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(b.path)
			if err != nil {
				t.Fatal(err)
			}
			if gid := fi.Sys().(*syscall.Stat_t).Gid; gid != tc.gid || fi.Mode().Perm() != tc.mode {
				t.Fatalf("bundle group %d mode %o, want %d %o", gid, fi.Mode().Perm(), tc.gid, tc.mode)
			}
		})
	}
	if _, err := newBundle(t.TempDir(), t.TempDir(), "ns", "id", []byte("{")); err == nil {
		t.Fatal("a spec that does not parse made a bundle")
	}
}
