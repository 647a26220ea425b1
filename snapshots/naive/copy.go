package naive

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// copyWorkers is how many regular files are copied at once. Copies of
// small files are bound by syscall latency and large ones by the disk;
// either way a few in flight beat one.
var copyWorkers = min(max(runtime.GOMAXPROCS(0), 4), 16)

// copyTree makes the empty directory dst a copy of the tree at src that a
// container cannot tell apart from it: file types, contents, modes,
// ownership, times, extended attributes and hard links are all kept.
// Symbolic links are copied, never followed.
//
// Regular files are copied by a pool of workers. Hard links and the
// metadata of directories wait until every file exists, because creating
// entries changes a directory's times.
func copyTree(ctx context.Context, dst, src string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: src, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("copy %s: not a directory", src)
	}

	c := &copier{
		ctx:   ctx,
		links: map[inode]string{},
		jobs:  make(chan entry, 4*copyWorkers),
		dirs:  []entry{{src, dst, st}},
	}
	c.wg.Add(copyWorkers)
	for range copyWorkers {
		go c.worker()
	}
	err := c.copyDir(dst, src)
	close(c.jobs)
	c.wg.Wait()
	if err == nil {
		err = c.firstErr()
	}
	if err != nil {
		return err
	}

	for _, l := range c.pending {
		if err := os.Link(l.old, l.new); err != nil {
			return err
		}
	}
	for i := len(c.dirs) - 1; i >= 0; i-- {
		d := &c.dirs[i]
		if err := setMetadata(d.dst, d.src, &d.st, &c.x); err != nil {
			return err
		}
	}
	return nil
}

type inode struct{ dev, ino uint64 }

// entry is a file to copy, or one copied whose metadata is yet to be set.
type entry struct {
	src, dst string
	st       unix.Stat_t
}

type copier struct {
	ctx   context.Context
	links map[inode]string // first copy of each multiply-linked inode
	// pending are hard links to make once every file exists.
	pending []struct{ old, new string }
	dirs    []entry // in pre-order, so that reversed children come first
	x       xattrBuf

	noClone, noCopyRange atomic.Bool // see fileCopier

	jobs chan entry // regular files, for the workers
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error // the first worker error
}

func (c *copier) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

func (c *copier) firstErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *copier) worker() {
	defer c.wg.Done()
	fc := fileCopier{noClone: &c.noClone, noCopyRange: &c.noCopyRange}
	for e := range c.jobs {
		if c.firstErr() != nil {
			continue // drain the queue
		}
		if err := fc.copyFile(e.dst, e.src, &e.st); err != nil {
			c.fail(err)
		}
	}
}

// copyDir copies the entries of directory src into the existing dst.
func (c *copier) copyDir(dst, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		if err := c.firstErr(); err != nil {
			return err
		}
		if err := c.copyEntry(filepath.Join(dst, name), filepath.Join(src, name)); err != nil {
			return err
		}
	}
	return nil
}

func (c *copier) copyEntry(dst, src string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: src, Err: err}
	}
	typ := st.Mode & unix.S_IFMT
	if typ == unix.S_IFDIR {
		// Owner-only until its metadata is set, after its children.
		if err := unix.Mkdir(dst, 0o700); err != nil {
			return &os.PathError{Op: "mkdir", Path: dst, Err: err}
		}
		c.dirs = append(c.dirs, entry{src, dst, st})
		return c.copyDir(dst, src)
	}
	if st.Nlink > 1 {
		key := inode{uint64(st.Dev), st.Ino}
		if first, ok := c.links[key]; ok {
			c.pending = append(c.pending, struct{ old, new string }{first, dst})
			return nil
		}
		c.links[key] = dst
	}
	switch typ {
	case unix.S_IFREG:
		select {
		case c.jobs <- entry{src, dst, st}:
			return nil
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := unix.Symlink(target, dst); err != nil {
			return &os.LinkError{Op: "symlink", Old: target, New: dst, Err: err}
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return &os.PathError{Op: "mknod", Path: dst, Err: err}
		}
	default:
		return fmt.Errorf("copy %s: unknown file type %#o", src, typ)
	}
	return setMetadata(dst, src, &st, &c.x)
}

// setMetadata gives dst the ownership, mode, extended attributes and times
// of src, whose stat is st, without following symbolic links. The order
// matters: chown clears set-id bits and file capabilities, and each step
// but the last changes only ctime.
func setMetadata(dst, src string, st *unix.Stat_t, x *xattrBuf) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return &os.PathError{Op: "lchown", Path: dst, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK { // a symlink's mode is fixed
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return &os.PathError{Op: "chmod", Path: dst, Err: err}
		}
	}
	if err := x.copyPath(dst, src); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: dst, Err: err}
	}
	return nil
}
