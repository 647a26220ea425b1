package overlay

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/mount"
)

// procFilesystems lists the filesystems the kernel has; a variable so that
// tests can stand in a kernel without overlay.
var procFilesystems = "/proc/filesystems"

// Supported returns nil if overlay works with upper directories under root,
// which it creates if need be, and otherwise an error saying why not. It
// mounts a small overlay under root to find out, since what the backing
// filesystem supports (an overlay or NFS root, xfs without d_type, a user
// namespace that cannot make whiteouts) is only known by trying.
func Supported(root string) error {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	if err := kernelHasOverlay(procFilesystems); err != nil {
		return err
	}
	if err := supportsDType(root); err != nil {
		return err
	}
	return tryMount(root)
}

// kernelHasOverlay checks the kernel's list of filesystems. The module is
// not loaded for us: that is the operator's call, made at boot.
func kernelHasOverlay(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("list kernel filesystems: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "nodev\toverlay", or a name alone for block filesystems.
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[len(fields)-1] == "overlay" {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("list kernel filesystems: %w", err)
	}
	return fmt.Errorf("the kernel has no overlay filesystem (not in %s; is the overlay module loaded?)", path)
}

// supportsDType checks that directory entries under dir carry their file
// type. Overlay mounts without it but then cannot find whiteouts; xfs
// formatted with ftype=0 is the usual culprit.
func supportsDType(dir string) error {
	td, err := os.MkdirTemp(dir, "d_type-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(td)
	if err := os.WriteFile(filepath.Join(td, "f"), nil, 0o600); err != nil {
		return err
	}
	fd, err := unix.Open(td, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: td, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 4096)
	n, err := unix.ReadDirent(fd, buf)
	if err != nil {
		return &os.PathError{Op: "getdents", Path: td, Err: err}
	}
	// Records are linux_dirent64: ino, off, reclen (2 bytes), type (1
	// byte), then the name.
	for b := buf[:n]; len(b) >= 19; {
		reclen := int(binary.NativeEndian.Uint16(b[16:18]))
		if reclen < 19 || reclen > len(b) {
			break
		}
		name, _, _ := bytes.Cut(b[19:reclen], []byte{0})
		if string(name) == "f" {
			if b[18] == unix.DT_UNKNOWN {
				return fmt.Errorf("%s does not record file types in directory entries (d_type); "+
					"on xfs, reformat with ftype=1", dir)
			}
			return nil
		}
		b = b[reclen:]
	}
	return errors.New("d_type check: test file not listed")
}

// tryMount mounts an overlay of two lower layers under dir and deletes a
// lower file through it, which makes overlay create a whiteout in the
// upper directory.
func tryMount(dir string) (err error) {
	td, err := os.MkdirTemp(dir, "overlay-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(td)
	for _, d := range []string{"lower1", "lower2", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(td, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(td, "lower1", "f"), nil, 0o644); err != nil {
		return err
	}
	m := mount.Mount{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + filepath.Join(td, "lower2") + ":" + filepath.Join(td, "lower1"),
		"upperdir=" + filepath.Join(td, "upper"),
		"workdir=" + filepath.Join(td, "work"),
	}}
	merged := filepath.Join(td, "merged")
	if err := m.Mount(merged); err != nil {
		return err
	}
	defer func() {
		if uerr := mount.UnmountAll(merged, unix.MNT_DETACH); uerr != nil && err == nil {
			err = uerr
		}
	}()
	if err := os.Remove(filepath.Join(merged, "f")); err != nil {
		return fmt.Errorf("overlay cannot delete a lower file (whiteout): %w", err)
	}
	return nil
}
