package mount

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// pageSize bounds the data mount(2) takes: the kernel copies one page of
// it, so longer options are cut short. A long chain of overlay layers,
// each an absolute path, reaches it at a few dozen layers.
var pageSize = os.Getpagesize()

// mountLongOverlay mounts an overlay whose options do not fit in a page.
// It rewrites lowerdir relative to the lower directories' closest common
// parent, which for snapshots is the snapshotter's own directory, and
// mounts from there. Mount calls it in place of mountRetry when data is
// too long.
func mountLongOverlay(source, target string, flags uintptr, options []string) error {
	dir, options := compactLowerdir(options)
	_, data, _ := parseOptions(options)
	if dir == "" || len(data) >= pageSize {
		return fmt.Errorf("overlay options are %d bytes, more than the %d mount(2) accepts, even with lowerdir relative to their common parent: %w",
			len(data), pageSize, unix.EINVAL)
	}
	target, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	return mountAt(dir, func() error { return mountRetry(source, target, "overlay", flags, data) })
}

// compactLowerdir returns options with the lowerdir paths made relative to
// their closest common parent directory, and that directory. It returns
// "" and options unchanged when there is no lowerdir or no common parent
// below the root.
func compactLowerdir(options []string) (string, []string) {
	idx := -1
	for i, o := range options {
		if strings.HasPrefix(o, "lowerdir=") {
			idx = i
		}
	}
	if idx < 0 {
		return "", options
	}
	lowers := strings.Split(strings.TrimPrefix(options[idx], "lowerdir="), ":")
	common := filepath.Dir(filepath.Clean(lowers[0]))
	for _, l := range lowers {
		l = filepath.Clean(l)
		if !filepath.IsAbs(l) {
			return "", options
		}
		for common != "/" && !strings.HasPrefix(l, common+"/") {
			common = filepath.Dir(common)
		}
	}
	if common == "/" {
		return "", options
	}
	rel := make([]string, len(lowers))
	for i, l := range lowers {
		rel[i] = strings.TrimPrefix(filepath.Clean(l), common+"/")
	}
	compacted := append([]string(nil), options...)
	compacted[idx] = "lowerdir=" + strings.Join(rel, ":")
	return common, compacted
}

// mountAt calls fn with the working directory dir, so that relative paths
// given to mount(2) resolve under it. The working directory is shared by
// the process's threads, so fn runs on a thread that first unshares it.
// That thread is never returned to the scheduler: it exits with the
// goroutine.
func mountAt(dir string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked; see above
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare working directory: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- &os.PathError{Op: "chdir", Path: dir, Err: err}
			return
		}
		errc <- fn()
	}()
	return <-errc
}
