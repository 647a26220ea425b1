package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// whiteout applies a whiteout entry named base in directory dir.
func (a *applier) whiteout(hdr *tar.Header, dir, base string) error {
	if base != WhiteoutOpaqueDir {
		// ".wh." and ".wh.." name nothing or the directory itself and
		// ".wh..." its parent: none is a name in dir.
		switch base[len(WhiteoutPrefix):] {
		case "", ".", "..":
			return fmt.Errorf("whiteout %q: %w", base, errInvalidArchive)
		}
	}
	// The directory is created if missing, as for any entry: converted
	// whiteouts need it, and a deleting one then deletes nothing.
	h, err := a.res.dir(dir, true)
	if err != nil {
		return err
	}
	defer a.res.release(h)

	if a.opts.ConvertWhiteout != nil {
		// The conversion may replace what is at the name.
		a.res.invalidate()
		return a.opts.ConvertWhiteout(hdr, h.fd, base)
	}
	if base == WhiteoutOpaqueDir {
		return a.opaque(h)
	}
	return a.removeAt(h, base[len(WhiteoutPrefix):])
}

// opaque deletes from h what the layers below put there: everything not
// unpacked by this layer, and below the directories this layer did
// unpack, what they had from below.
func (a *applier) opaque(h *dirHandle) error {
	id, err := h.ID()
	if err != nil {
		return err
	}
	if _, ok := a.opaqued[id]; ok {
		return nil
	}
	a.opaqued[id] = struct{}{}
	a.res.invalidate()
	fd, err := unix.Openat(h.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open opaque directory: %w", err)
	}
	defer unix.Close(fd)
	return a.clearLower(fd, id)
}

func (a *applier) clearLower(fd int, id fileID) error {
	names, err := readDirNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		if _, ok := a.unpacked[entryKey{id, n}]; !ok {
			if err := removeAllAt(fd, n); err != nil {
				return err
			}
			continue
		}
		child, err := unix.Openat(fd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
				continue // this layer's file or symlink
			}
			return fmt.Errorf("open %q: %w", n, err)
		}
		var st unix.Stat_t
		if err = unix.Fstat(child, &st); err == nil {
			err = a.clearLower(child, fileID{uint64(st.Dev), st.Ino})
		}
		unix.Close(child)
		if err != nil {
			return err
		}
	}
	return nil
}

// OverlayConvertWhiteout writes whiteouts as overlayfs reads them in an
// upper directory: a deleted name becomes a 0/0 character device, an
// opaque directory gets the trusted.overlay.opaque xattr. Nothing is
// deleted, since what is hidden lives in the lower directories.
func OverlayConvertWhiteout(hdr *tar.Header, dirfd int, base string) error {
	if base == WhiteoutOpaqueDir {
		fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open opaque directory: %w", err)
		}
		defer unix.Close(fd)
		if err := unix.Fsetxattr(fd, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			return fmt.Errorf("set opaque xattr: %w", err)
		}
		return nil
	}
	name := base[len(WhiteoutPrefix):]
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return fmt.Errorf("whiteout %q: %w", base, errInvalidArchive)
	}
	// This layer may have put something at the name itself.
	if err := removeAllAt(dirfd, name); err != nil {
		return err
	}
	if err := unix.Mknodat(dirfd, name, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("mknod whiteout: %w", err)
	}
	if err := unix.Fchownat(dirfd, name, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown whiteout: %w", err)
	}
	return nil
}
