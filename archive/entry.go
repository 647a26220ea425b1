package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path"

	"golang.org/x/sys/unix"
)

// Every entry is created with an *at call on its parent's descriptor that
// fails rather than follow or overwrite what is at its name (O_EXCL,
// mkdirat, symlinkat, linkat, mknodat all do). On EEXIST what is there is
// removed without following it and the call is tried once more; the
// common case of a fresh name costs no stat.

// file writes a regular file: one open, the data, then owner, xattrs,
// mode and times through the descriptor, so nothing can redirect them.
func (a *applier) file(ctx context.Context, h *dirHandle, base string, hdr *tar.Header, r io.Reader) error {
	perm := tarPerm(hdr)
	var fd int
	err := a.createAt(h, base, func() (err error) {
		fd, err = unix.Openat(h.fd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm&0o777)
		return err
	})
	if err != nil {
		return fmt.Errorf("create file: %w", err)
	}
	err = a.fillFile(ctx, fd, hdr, r)
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	return err
}

func (a *applier) fillFile(ctx context.Context, fd int, hdr *tar.Header, r io.Reader) error {
	if err := copyToFd(ctx, fd, r, hdr.Size, *a.buf); err != nil {
		return err
	}
	if err := a.chownFd(fd, hdr); err != nil {
		return err
	}
	if err := a.xattrsFd(fd, hdr); err != nil {
		return err
	}
	// The file was created with the permission bits alone, through the
	// umask, and chown would clear set-id bits anyway; otherwise the mode
	// is already right.
	if perm := tarPerm(hdr); perm&a.res.umask != 0 || perm&0o7000 != 0 {
		if err := unix.Fchmod(fd, perm); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	ts := tarTimes(hdr)
	if err := futimens(fd, &ts); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// copyToFd writes exactly size bytes of r to fd through buf. Chunks of
// zeros are skipped with a seek, leaving holes: a sparse entry in the
// tar, which the tar reader expands to its full logical size, then costs
// no disk, however large it claims to be.
func copyToFd(ctx context.Context, fd int, r io.Reader, size int64, buf []byte) error {
	if size > bigFile {
		// Fail at once on sizes the filesystem cannot hold.
		if err := unix.Ftruncate(fd, size); err != nil {
			return fmt.Errorf("size file to %d: %w", size, err)
		}
	}
	holes := false
	for size > 0 {
		n := int64(len(buf))
		if size < n {
			n = size
		}
		m, err := io.ReadFull(r, buf[:n])
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read file data: %w", err)
		}
		size -= int64(m)
		if m == len(buf) && isZero(buf[:m]) {
			if _, err := unix.Seek(fd, int64(m), io.SeekCurrent); err != nil {
				return fmt.Errorf("seek: %w", err)
			}
			holes = true
		} else {
			for p := buf[:m]; len(p) > 0; {
				w, err := unix.Write(fd, p)
				if err != nil {
					if errors.Is(err, unix.EINTR) {
						continue
					}
					return fmt.Errorf("write: %w", err)
				}
				p = p[w:]
			}
		}
		if size > 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	if holes {
		// A hole at the end needs the size set explicitly.
		off, err := unix.Seek(fd, 0, io.SeekCurrent)
		if err == nil {
			err = unix.Ftruncate(fd, off)
		}
		if err != nil {
			return fmt.Errorf("size file: %w", err)
		}
	}
	return nil
}

// bigFile is the size past which files are sized before being written.
const bigFile = 64 << 20

// zeros is what isZero compares with, a page at a time: an array in the
// binary's zeroed data costs nothing until used, while the 1 MiB slice
// made here at start-up was live heap in every daemon, a seventh of it
// when idle, raising the collector's goal by twice that.
var zeros [4096]byte

// isZero reports whether b is all zeros; memequal stops at the first
// difference, so data costs next to nothing.
func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// dir creates a directory, or takes over the existing one at base, and
// caches its descriptor for the entries in it that follow.
func (a *applier) dir(ctx context.Context, h *dirHandle, name, base string, hdr *tar.Header) error {
	perm := tarPerm(hdr)
	err := unix.Mkdirat(h.fd, base, perm&0o777)
	if errors.Is(err, unix.EEXIST) {
		// A directory in the layer merges with one already there; anything
		// else there is replaced.
		var st unix.Stat_t
		if err = unix.Fstatat(h.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			err = a.createAt(h, base, func() error { return unix.Mkdirat(h.fd, base, perm&0o777) })
		}
	}
	if err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	fd, err := unix.Openat(h.fd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open directory: %w", err)
	}
	d := a.res.add(name, fd)
	d.readable = true
	if err := a.chownFd(fd, hdr); err != nil {
		return err
	}
	if err := a.xattrsFd(fd, hdr); err != nil {
		return err
	}
	// Always: mkdir went through the umask and a set-gid parent passes its
	// bit on.
	if err := unix.Fchmod(fd, perm); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	a.dirs = append(a.dirs, dirTimes{name: name, ts: tarTimes(hdr)})
	return nil
}

func (a *applier) symlink(ctx context.Context, h *dirHandle, base string, hdr *tar.Header) error {
	// The target is stored as given: it is only ever followed by the
	// resolver, inside root, or by the container, inside its root.
	err := a.createAt(h, base, func() error { return unix.Symlinkat(hdr.Linkname, h.fd, base) })
	if err != nil {
		return fmt.Errorf("symlink: %w", err)
	}
	return a.metaAt(ctx, h, base, hdr, true)
}

// hardlink links base to the entry hdr.Linkname names, which is resolved
// like any other name: its directories inside root, its last component
// not followed, so a link to a symlink links the symlink.
func (a *applier) hardlink(ctx context.Context, h *dirHandle, base string, hdr *tar.Header) error {
	target := path.Clean("/" + hdr.Linkname)
	if target == "/" {
		return fmt.Errorf("hardlink to root: %w", errInvalidArchive)
	}
	tdir, tbase := path.Split(target)
	th, err := a.res.dir(path.Clean(tdir), false)
	if err != nil {
		return fmt.Errorf("hardlink target: %w", err)
	}
	defer a.res.release(th)
	err = a.createAt(h, base, func() error { return unix.Linkat(th.fd, tbase, h.fd, base, 0) })
	if err != nil {
		return fmt.Errorf("hardlink to %q: %w", shorten(hdr.Linkname), err)
	}
	return a.metaAt(ctx, h, base, hdr, false)
}

// special makes device nodes and fifos.
func (a *applier) special(ctx context.Context, h *dirHandle, base string, hdr *tar.Header) error {
	mode := tarPerm(hdr)
	switch hdr.Typeflag {
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeFifo:
		mode |= unix.S_IFIFO
	}
	// Mkdev takes 32 bits; truncating would make another device than the
	// header names.
	if hdr.Devmajor < 0 || hdr.Devmajor > math.MaxUint32 || hdr.Devminor < 0 || hdr.Devminor > math.MaxUint32 {
		return fmt.Errorf("device number %d:%d out of range: %w", hdr.Devmajor, hdr.Devminor, errInvalidArchive)
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	err := a.createAt(h, base, func() error { return unix.Mknodat(h.fd, base, mode, int(dev)) })
	if err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	return a.metaAt(ctx, h, base, hdr, false)
}

// createAt runs create, which makes base in h; if something is in the way
// it is removed, without following it, and create runs once more.
func (a *applier) createAt(h *dirHandle, base string, create func() error) error {
	err := create()
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	if err := a.removeAt(h, base); err != nil {
		return fmt.Errorf("replace: %w", err)
	}
	return create()
}

// removeAt removes base from h, and all under it. The resolver's cache may
// hold what was removed, so it is dropped.
func (a *applier) removeAt(h *dirHandle, base string) error {
	a.res.invalidate()
	return removeAllAt(h.fd, base)
}

// setDirTimes sets the directories' times, now that nothing more is
// created in them.
func (a *applier) setDirTimes() error {
	for i := range a.dirs {
		d := &a.dirs[i]
		if h, ok := a.res.cache[d.name]; ok && h.readable {
			if err := futimens(h.fd, &d.ts); err != nil {
				return fmt.Errorf("set times of %q: %w", d.name, err)
			}
			continue
		}
		dir, base := path.Split(d.name)
		h, err := a.res.dir(path.Clean(dir), false)
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
				continue // deleted by a later entry
			}
			return fmt.Errorf("set times of %q: %w", d.name, err)
		}
		// A later entry may have put something else at the name.
		var st unix.Stat_t
		err = unix.Fstatat(h.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = unix.UtimesNanoAt(h.fd, base, d.ts[:], unix.AT_SYMLINK_NOFOLLOW)
		}
		a.res.release(h)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("set times of %q: %w", d.name, err)
		}
	}
	return nil
}
