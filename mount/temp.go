package mount

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Temporary mounts, through which a layer is applied or a diff read, are
// made on directories created for the purpose and removed after. A crash
// leaves them mounted, and a plain directory may hold what was written
// into it; so the daemon keeps them under its root, in <root>/tmpmounts as
// containerd does, where its next start finds and removes them
// (CleanupTempMounts) before anything could be using them. In the system
// temp directory nothing would ever look for them.
//
// The daemon sets the location at start-up with SetTempMountLocation;
// until then, as in tests and other users of the package, temporary
// mounts are made in os.TempDir().
var tempMountLocation atomic.Pointer[string]

// tempMountPrefix starts the names of temporary mount directories.
const tempMountPrefix = "containerd-mount"

func tempMountDir() string {
	if dir := tempMountLocation.Load(); dir != nil {
		return *dir
	}
	return os.TempDir()
}

// SetTempMountLocation makes temporary mounts in dir from now on,
// creating it, accessible to root only, if need be.
func SetTempMountLocation(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create temporary mount location: %w", err)
	}
	// The kernel reports mount points with symbolic links resolved, and
	// CleanupTempMounts finds its mounts by this path.
	real, err := filepath.EvalSymlinks(dir)
	if err == nil {
		real, err = filepath.Abs(real)
	}
	if err != nil {
		return fmt.Errorf("temporary mount location: %w", err)
	}
	tempMountLocation.Store(&real)
	return nil
}

// WithTempMount mounts mounts on a new temporary directory, calls fn with
// it, then unmounts and removes the directory, whatever fn returns. With
// no mounts, fn gets an empty directory.
func WithTempMount(ctx context.Context, mounts []Mount, fn func(root string) error) (err error) {
	root, err := os.MkdirTemp(tempMountDir(), tempMountPrefix)
	if err != nil {
		return fmt.Errorf("create temp mount dir: %w", err)
	}
	defer func() {
		if uerr := UnmountAll(root, 0); uerr != nil && err == nil {
			err = uerr
		}
		// Remove, not RemoveAll: were something still mounted there,
		// RemoveAll would delete the files of what is mounted.
		if rerr := os.Remove(root); rerr != nil && err == nil {
			err = fmt.Errorf("remove temp mount dir: %w", rerr)
		}
	}()
	if err := All(mounts, root); err != nil {
		return err
	}
	return fn(root)
}

// CleanupTempMounts unmounts and removes whatever is in the location
// SetTempMountLocation set: what a previous run left there. Call it at
// start-up, before anything makes temporary mounts, since it takes every
// one; without a location set it does nothing, as it must never sweep the
// system temp directory.
//
// Mounts go first, the deepest first, detached: nothing of this run uses
// them yet, and whatever else holds one on to it keeps its view. A
// directory is removed, contents and all, only if afterwards no mount is
// left at or under it: RemoveAll through a mount would delete the files of
// the snapshot mounted there.
func CleanupTempMounts() error {
	p := tempMountLocation.Load()
	if p == nil {
		return nil
	}
	dir := *p
	mounted, err := mountPointsUnder(dir)
	if err != nil {
		return err
	}
	// Deepest first, so that nested mounts go before the one they are on.
	slices.SortFunc(mounted, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, mp := range mounted {
		if err := UnmountAll(mp, unix.MNT_DETACH); err != nil {
			errs = append(errs, err)
		}
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("read temporary mount location: %w", err))...)
	}
	if mounted, err = mountPointsUnder(dir); err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if slices.ContainsFunc(mounted, func(mp string) bool { return mp == path || strings.HasPrefix(mp, path+"/") }) {
			errs = append(errs, fmt.Errorf("leftover temporary mount %s: still mounted, left in place", path))
			continue
		}
		if err := os.RemoveAll(path); err != nil {
			errs = append(errs, fmt.Errorf("remove leftover temporary mount: %w", err))
		}
	}
	return errors.Join(errs...)
}

// mountPointsUnder returns the mount points strictly below dir, as
// /proc/self/mountinfo lists them. dir itself may be a mount point (a
// tmpfs an administrator put there); that is not a temporary mount.
func mountPointsUnder(dir string) ([]string, error) {
	all, err := PointsUnder(dir)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, mp := range all {
		if mp != dir {
			out = append(out, mp)
		}
	}
	return out, nil
}

// PointsUnder returns the mount points at or below dir in this process's
// mount namespace, in the order /proc/self/mountinfo lists them: a mount
// comes after the mounts it is on.
func PointsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID, parent ID, major:minor, root, mount point, ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		if mp := unescapeMountinfo(fields[4]); mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	return out, nil
}

// unescapeMountinfo undoes the kernel's escaping of space, tab, newline
// and backslash in mountinfo paths, as \ooo octal.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
