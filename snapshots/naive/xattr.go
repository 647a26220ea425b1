package naive

import (
	"bytes"
	"errors"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// xattrBuf copies extended attributes, reusing its buffers from file to
// file. It is not safe for concurrent use.
type xattrBuf struct {
	names, value []byte
}

// copyPath copies the extended attributes of src to dst, without following
// symbolic links.
func (x *xattrBuf) copyPath(dst, src string) error {
	return x.copy(dst,
		func(b []byte) (int, error) { return unix.Llistxattr(src, b) },
		func(name string, b []byte) (int, error) { return unix.Lgetxattr(src, name, b) },
		func(name string, v []byte) error { return unix.Lsetxattr(dst, name, v, 0) })
}

// copyFd copies the extended attributes of the open file in to out, named
// dst in errors.
func (x *xattrBuf) copyFd(out, in int, dst string) error {
	return x.copy(dst,
		func(b []byte) (int, error) { return unix.Flistxattr(in, b) },
		func(name string, b []byte) (int, error) { return unix.Fgetxattr(in, name, b) },
		func(name string, v []byte) error { return unix.Fsetxattr(out, name, v, 0) })
}

func (x *xattrBuf) copy(dst string,
	list func([]byte) (int, error),
	get func(string, []byte) (int, error),
	set func(string, []byte) error,
) error {
	n, err := grow(&x.names, list)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil // the source cannot have any
		}
		return &os.PathError{Op: "listxattr", Path: dst, Err: err}
	}
	for names := x.names[:n]; len(names) > 0; {
		i := bytes.IndexByte(names, 0)
		if i < 0 {
			break
		}
		name := string(names[:i])
		names = names[i+1:]

		vn, err := grow(&x.value, func(b []byte) (int, error) { return get(name, b) })
		if errors.Is(err, unix.ENODATA) {
			continue // removed since listed
		}
		if err != nil {
			return &os.PathError{Op: "getxattr " + name, Path: dst, Err: err}
		}
		if err := set(name, x.value[:vn]); err != nil && !ignorableXattrError(name, err) {
			return &os.PathError{Op: "setxattr " + name, Path: dst, Err: err}
		}
	}
	return nil
}

// ignorableXattrError reports whether failing to set attribute name is
// to be accepted: where the destination cannot hold extended attributes
// at all, or, outside the user namespace, where the kernel does not let us
// (trusted.* without CAP_SYS_ADMIN, a security module's own attributes).
func ignorableXattrError(name string, err error) bool {
	if errors.Is(err, unix.ENOTSUP) {
		return true
	}
	return !strings.HasPrefix(name, "user.") && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES))
}

// grow calls fn with *buf, growing *buf while the result does not fit,
// and returns the length fn reports.
func grow(buf *[]byte, fn func([]byte) (int, error)) (int, error) {
	if *buf == nil {
		*buf = make([]byte, 256)
	}
	for {
		n, err := fn(*buf)
		if !errors.Is(err, unix.ERANGE) {
			return n, err
		}
		// Ask for the size, then allow for growth in between.
		size, err := fn(nil)
		if err != nil {
			return 0, err
		}
		*buf = make([]byte, max(size+size/4, 2*len(*buf)))
	}
}
