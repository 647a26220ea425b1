package archive

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// mkdirAt makes directory name in dirfd for an entry whose parents the
// layer does not list. canon is dirfd's path under root. With parents (the
// lower directories of an overlay) the new directory copies the owner,
// mode, times and xattrs of the same directory in the topmost lower that
// has it, so that the merged view keeps them; otherwise it is 0755 root.
func (r *resolver) mkdirAt(dirfd int, name string, canon []string) error {
	if err := unix.Mkdirat(dirfd, name, 0o755); err != nil {
		return err
	}
	if len(r.parents) > 0 {
		rel := strings.Join(append(canon[:len(canon):len(canon)], name), "/")
		for _, p := range r.parents {
			done, err := copyDirInfo(p, rel, dirfd, name)
			if err != nil {
				return err
			}
			if done {
				return nil
			}
		}
	}
	if r.umask&0o755 != 0 {
		return unix.Fchmodat(dirfd, name, 0o755, 0)
	}
	return nil
}

// copyDirInfo copies the attributes of rel under lower onto name in
// dirfd. It reports false, and copies nothing, if lower has no directory
// at rel; a non-directory there hides any further below, so it also
// reports true.
func copyDirInfo(lower, rel string, dirfd int, name string) (bool, error) {
	lowerfd, err := unix.Open(lower, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("open parent %s: %w", lower, err)
	}
	defer unix.Close(lowerfd)
	// Lowers are earlier layers, applied by us; still, follow no symlink
	// out of one.
	how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS}
	src, err := unix.Openat2(lowerfd, rel, &how)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return true, nil // replaced by a non-directory in this lower
		}
		return false, fmt.Errorf("open %s in parent %s: %w", rel, lower, err)
	}
	defer unix.Close(src)
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return false, err
	}
	dst, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(dst)
	if err := unix.Fchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return false, fmt.Errorf("chown %s: %w", rel, err)
	}
	if err := unix.Fchmod(dst, st.Mode&0o7777); err != nil {
		return false, fmt.Errorf("chmod %s: %w", rel, err)
	}
	if err := copyXattrs(src, dst); err != nil {
		return false, fmt.Errorf("copy xattrs of %s: %w", rel, err)
	}
	ts := [2]unix.Timespec{st.Atim, st.Mtim}
	if err := futimens(dst, &ts); err != nil {
		return false, fmt.Errorf("set times of %s: %w", rel, err)
	}
	return true, nil
}

// copyXattrs copies the xattrs of src to dst, except trusted.* ones.
func copyXattrs(src, dst int) error {
	keys, err := listXattrs(src)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if strings.HasPrefix(k, "trusted.") {
			continue
		}
		v, err := getXattr(src, k)
		if err != nil {
			if errors.Is(err, unix.ENODATA) {
				continue
			}
			return err
		}
		if err := unix.Fsetxattr(dst, k, v, 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return err
		}
	}
	return nil
}

func listXattrs(fd int) ([]string, error) {
	sz, err := unix.Flistxattr(fd, nil)
	if err != nil || sz == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			err = nil
		}
		return nil, err
	}
	buf := make([]byte, sz)
	sz, err = unix.Flistxattr(fd, buf)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, k := range strings.Split(string(buf[:sz]), "\x00") {
		if k != "" {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

func getXattr(fd int, key string) ([]byte, error) {
	sz, err := unix.Fgetxattr(fd, key, nil)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, sz)
	sz, err = unix.Fgetxattr(fd, key, buf)
	if err != nil {
		return nil, err
	}
	return buf[:sz], nil
}
