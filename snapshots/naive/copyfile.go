package naive

import (
	"errors"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// copyBufferSize is the buffer for copying through user space, when the
// kernel cannot copy by itself.
const copyBufferSize = 1 << 20

// fileCopier copies regular files. It remembers whether the filesystem has
// refused clones or copy_file_range, so that once it has, the remaining
// files of the tree go straight to what works. It is shared by the workers
// copying one tree; buf is one worker's own.
type fileCopier struct {
	noClone, noCopyRange *atomic.Bool
	x                    xattrBuf
	buf                  []byte
}

// copyFile creates dst as a copy of the regular file src, whose stat is
// st, with src's metadata.
func (fc *fileCopier) copyFile(dst, src string, st *unix.Stat_t) error {
	in, err := unix.Open(src, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: src, Err: err}
	}
	defer unix.Close(in)
	out, err := unix.Open(dst, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "create", Path: dst, Err: err}
	}
	err = fc.fill(out, in, dst, st)
	if cerr := unix.Close(out); cerr != nil && err == nil {
		err = &os.PathError{Op: "close", Path: dst, Err: cerr}
	}
	return err
}

// fill gives the new file out the contents and metadata of in.
func (fc *fileCopier) fill(out, in int, dst string, st *unix.Stat_t) error {
	if st.Size > 0 {
		if err := fc.copyData(out, in, st); err != nil {
			return &os.PathError{Op: "copy data to", Path: dst, Err: err}
		}
	}
	if err := unix.Fchown(out, int(st.Uid), int(st.Gid)); err != nil {
		return &os.PathError{Op: "fchown", Path: dst, Err: err}
	}
	if err := unix.Fchmod(out, st.Mode&0o7777); err != nil {
		return &os.PathError{Op: "fchmod", Path: dst, Err: err}
	}
	if err := fc.x.copyFd(out, in, dst); err != nil {
		return err
	}
	if err := futimens(out, &[2]unix.Timespec{st.Atim, st.Mtim}); err != nil {
		return &os.PathError{Op: "futimens", Path: dst, Err: err}
	}
	return nil
}

// copyData copies the contents of in to the empty out: by sharing extents
// where the filesystem can, else inside the kernel, else through buf.
// Holes in sparse files stay holes.
func (fc *fileCopier) copyData(out, in int, st *unix.Stat_t) error {
	if !fc.noClone.Load() {
		err := unix.IoctlFileClone(out, in)
		if err == nil {
			return nil
		}
		if !unsupported(err) {
			return err
		}
		fc.noClone.Store(true)
	}
	if st.Blocks*512 >= st.Size {
		return fc.copyRange(out, in, 0, st.Size)
	}
	// Sparse: copy each data region and leave the rest a hole.
	var off int64
	for off < st.Size {
		data, err := unix.Seek(in, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole remains
		}
		if err != nil {
			return fc.copyRange(out, in, off, st.Size-off)
		}
		hole, err := unix.Seek(in, data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		if err := fc.copyRange(out, in, data, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return unix.Ftruncate(out, st.Size)
}

// copyRange copies n bytes at off from in to the same offset in out.
func (fc *fileCopier) copyRange(out, in int, off, n int64) error {
	end := off + n
	for !fc.noCopyRange.Load() && off < end {
		roff, woff := off, off
		w, err := unix.CopyFileRange(in, &roff, out, &woff, int(min(end-off, 1<<30)), 0)
		if err != nil {
			if !unsupported(err) {
				return err
			}
			fc.noCopyRange.Store(true)
			break
		}
		if w == 0 {
			return nil // the file shrank; a committed snapshot does not
		}
		off += int64(w)
	}
	if off >= end {
		return nil
	}
	if fc.buf == nil {
		fc.buf = make([]byte, copyBufferSize)
	}
	for off < end {
		r, err := unix.Pread(in, fc.buf[:min(int64(len(fc.buf)), end-off)], off)
		if err != nil {
			return err
		}
		if r == 0 {
			return nil
		}
		for p := fc.buf[:r]; len(p) > 0; {
			w, err := unix.Pwrite(out, p, off)
			if err != nil {
				return err
			}
			p, off = p[w:], off+int64(w)
		}
	}
	return nil
}

// unsupported reports whether err means the filesystem, not the file,
// cannot do what was asked.
func unsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTSUP) ||
		errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.ENOTTY)
}

// futimens sets the times of the open file fd. x/sys/unix has no
// nanosecond variant taking a descriptor, so call utimensat with a nil
// path, which is how the C library implements it.
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
