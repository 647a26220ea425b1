package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/sys"
)

// tarPerm returns the permission and set-id/sticky bits of hdr, which tar
// stores in their Unix positions.
func tarPerm(hdr *tar.Header) uint32 { return uint32(hdr.Mode) & 0o7777 }

var (
	minTime = time.Unix(0, 0)
	maxTime = time.Unix(0, 1<<63-1)
)

// boundTime maps times the kernel cannot store to the epoch.
func boundTime(t time.Time) time.Time {
	if t.Before(minTime) || t.After(maxTime) {
		return minTime
	}
	return t
}

// tarTimes returns the access and modification times for hdr's entry;
// a missing or older access time becomes the modification time.
func tarTimes(hdr *tar.Header) [2]unix.Timespec {
	atime := hdr.AccessTime
	if atime.Before(hdr.ModTime) {
		atime = hdr.ModTime
	}
	return [2]unix.Timespec{
		unix.NsecToTimespec(boundTime(atime).UnixNano()),
		unix.NsecToTimespec(boundTime(hdr.ModTime).UnixNano()),
	}
}

// futimens sets fd's times; x/sys offers it only through /proc.
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

func (a *applier) chownFd(fd int, hdr *tar.Header) error {
	if a.opts.NoSameOwner {
		return nil
	}
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return chownError(hdr, err)
	}
	return nil
}

func chownError(hdr *tar.Header, err error) error {
	err = fmt.Errorf("chown to %d:%d: %w", hdr.Uid, hdr.Gid, err)
	if errors.Is(err, unix.EINVAL) && sys.RunningInUserNS() {
		err = fmt.Errorf("%w (the user namespace may map too few IDs)", err)
	}
	return err
}

// xattrs returns hdr's extended attributes, the ones to set.
func xattrs(hdr *tar.Header) map[string]string {
	var out map[string]string
	for k, v := range hdr.PAXRecords {
		if !strings.HasPrefix(k, paxSchilyXattr) {
			continue
		}
		if out == nil {
			out = make(map[string]string)
		}
		out[k[len(paxSchilyXattr):]] = v
	}
	return out
}

// xattrError decides which failures to set an attribute are fatal.
// Attributes the filesystem cannot store are skipped, as containerd does.
func xattrError(key string, err error) error {
	if errors.Is(err, unix.ENOTSUP) {
		log.L.WithError(err).Warnf("skip xattr %s from archive", key)
		return nil
	}
	return fmt.Errorf("set xattr %s: %w", key, err)
}

// skipXattr reports whether key may not come from an archive. trusted.*
// needs privilege the layer's author should not borrow from us, and the
// overlay.* ones in it would change how overlayfs reads the upper dir.
func skipXattr(key string) bool {
	if strings.HasPrefix(key, "trusted.") {
		log.L.Warnf("skip xattr %s from archive: trusted attributes not allowed", key)
		return true
	}
	return false
}

func (a *applier) xattrsFd(fd int, hdr *tar.Header) error {
	for k, v := range xattrs(hdr) {
		if skipXattr(k) {
			continue
		}
		if err := unix.Fsetxattr(fd, k, []byte(v), 0); err != nil {
			if err := xattrError(k, err); err != nil {
				return err
			}
		}
	}
	return nil
}

// metaAt sets owner, xattrs, mode and times on base in h, never following
// a symlink at base: for entries that cannot be opened for writing.
func (a *applier) metaAt(ctx context.Context, h *dirHandle, base string, hdr *tar.Header, symlink bool) error {
	if !a.opts.NoSameOwner {
		if err := unix.Fchownat(h.fd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return chownError(hdr, err)
		}
	}
	if x := xattrs(hdr); len(x) > 0 {
		// No *at call sets an xattr on older kernels; through the
		// directory's /proc entry the directory stays the one resolved
		// and base is not followed.
		p := "/proc/self/fd/" + strconv.Itoa(h.fd) + "/" + base
		for k, v := range x {
			if skipXattr(k) {
				continue
			}
			if err := unix.Lsetxattr(p, k, []byte(v), 0); err != nil {
				if errors.Is(err, unix.EPERM) && strings.HasPrefix(k, "user.") {
					// user.* only exists on regular files and directories.
					log.G(ctx).WithError(err).Warnf("skip xattr %s on %q", k, hdr.Name)
					continue
				}
				if err := xattrError(k, err); err != nil {
					return err
				}
			}
		}
	}
	if !symlink {
		if err := fchmodatNoFollow(h.fd, base, tarPerm(hdr)); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	ts := tarTimes(hdr)
	if err := unix.UtimesNanoAt(h.fd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// fchmodatNoFollow sets the mode of base in dirfd unless it is a symlink.
// fchmodat2 does it in one call; older kernels get the glibc emulation:
// pin the inode with O_PATH, check it, chmod it through /proc.
func fchmodatNoFollow(dirfd int, base string, mode uint32) error {
	err := unix.Fchmodat(dirfd, base, mode, unix.AT_SYMLINK_NOFOLLOW)
	if !errors.Is(err, unix.EOPNOTSUPP) {
		return err
	}
	fd, err := unix.Openat(dirfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil // symlinks have no mode of their own
	}
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode)
}

// processUmask returns the umask, which the kernel applies to every mode
// Apply creates with, read without changing it. Unknown, it is taken as
// 0o777 so that every mode is set explicitly.
func processUmask() uint32 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0o777
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("Umask:")); ok {
			m, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 8, 32)
			if err != nil {
				return 0o777
			}
			return uint32(m)
		}
	}
	return 0o777
}

// bufSize is the copy buffer: big enough that most files take one write.
const bufSize = 1 << 20

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

func getBuffer() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuffer(b *[]byte) { bufPool.Put(b) }
