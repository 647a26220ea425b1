package archive

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// removeAllAt removes name from dirfd and, if it is a directory, all under
// it. Symlinks are removed, never followed, and each directory is opened
// from its parent's descriptor with O_NOFOLLOW, so the removal stays
// inside dirfd even if names are swapped while it runs.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if errors.Is(err, unix.ENOTDIR) {
			err = unix.EPERM // not a directory after all: unlink's answer stands
		}
		return fmt.Errorf("remove %q: %w", name, err)
	}
	if err := removeChildren(fd); err != nil {
		unix.Close(fd)
		return fmt.Errorf("remove %q: %w", name, err)
	}
	unix.Close(fd)
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	return nil
}

// removeChildren empties the directory open as fd.
func removeChildren(fd int) error {
	names, err := readDirNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := removeAllAt(fd, n); err != nil {
			return err
		}
	}
	return nil
}

// readDirNames lists the directory open as fd, which must not be O_PATH.
// fd stays open.
func readDirNames(fd int) ([]string, error) {
	// A duplicate gives os.File its own descriptor to close and its own
	// offset, starting at 0.
	dup, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open directory: %w", err)
	}
	f := os.NewFile(uintptr(dup), "")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read directory: %w", err)
	}
	return names, nil
}
