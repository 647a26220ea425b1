package archive

// Path resolution.
//
// Every name in a layer is resolved one directory at a time under root,
// as if root were "/": a symlink met on the way is followed, but its
// target is read relative to root, and ".." stops at root, the way the
// kernel resolves paths after chroot. What an entry creates, replaces or
// removes is then only ever the last component of its name, through a
// file descriptor held on the parent directory and *at system calls that
// never follow a symlink there. So no entry reaches outside root through
// an earlier symlink, and a symlink swapped in under a name between two
// calls is acted on itself, never followed.
//
// The kernel does the walk in one call (openat2 with RESOLVE_IN_ROOT)
// where it can; walk does the same in user space where it cannot, and to
// create the directories missing on the way.

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSymlinks bounds the symlinks one resolution follows, as the kernel's
// ELOOP limit does, so that a cycle of links ends.
const maxSymlinks = 255

// maxCachedDirs bounds the directory descriptors a resolver keeps open.
// Layers list a directory's entries together, so a few dozen is plenty.
const maxCachedDirs = 64

// dirHandle is a directory inside root, open as a descriptor.
type dirHandle struct {
	fd    int
	name  string // the cache key it was resolved from, "" for root
	pins  int    // callers using fd; it is closed only at zero
	dead  bool   // evicted: close when the last pin goes
	used  uint64 // resolver clock at last use, for eviction
	id    fileID // set once hasID
	hasID bool
	// readable is set when fd is a real open, not O_PATH, so that
	// fd-only calls such as futimens work on it.
	readable bool
}

// fileID identifies an inode.
type fileID struct{ dev, ino uint64 }

// ID returns the directory's device and inode numbers.
func (h *dirHandle) ID() (fileID, error) {
	if !h.hasID {
		var st unix.Stat_t
		if err := unix.Fstat(h.fd, &st); err != nil {
			return fileID{}, fmt.Errorf("stat directory %q: %w", h.name, err)
		}
		h.id, h.hasID = fileID{uint64(st.Dev), st.Ino}, true
	}
	return h.id, nil
}

// resolver resolves names under one root, caching the directories it
// opened. Cached descriptors stay valid only while nothing is removed:
// removing or replacing a directory could leave a cached name pointing at
// a deleted one, so every removal drops the cache (invalidate).
type resolver struct {
	root      *dirHandle
	cache     map[string]*dirHandle
	clock     uint64
	noOpenat2 bool
	// parents and umask serve mkdirAt.
	parents []string
	umask   uint32
}

// forceWalk makes resolvers skip openat2, so tests cover walk alone.
var forceWalk bool

func newResolver(root string, parents []string) (*resolver, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", root, err)
	}
	return &resolver{
		root:      &dirHandle{fd: fd, pins: 1},
		cache:     make(map[string]*dirHandle),
		noOpenat2: forceWalk,
		parents:   parents,
		umask:     processUmask(),
	}, nil
}

// close closes every descriptor the resolver holds.
func (r *resolver) close() {
	r.invalidate()
	unix.Close(r.root.fd)
}

// dir returns the directory name resolves to; name is clean and absolute
// ("/" or "/a/b"). With create, missing directories on the way are made.
// The handle is pinned: the caller must release it.
func (r *resolver) dir(name string, create bool) (*dirHandle, error) {
	if name == "/" {
		return r.root, nil
	}
	r.clock++
	if h, ok := r.cache[name]; ok {
		h.used = r.clock
		h.pins++
		return h, nil
	}
	fd, err := r.open(name, create)
	if err != nil {
		return nil, err
	}
	h := r.add(name, fd)
	h.pins++
	return h, nil
}

// release unpins h.
func (r *resolver) release(h *dirHandle) {
	if h == r.root {
		return
	}
	h.pins--
	if h.pins == 0 && h.dead {
		unix.Close(h.fd)
	}
}

// add caches fd, which the caller opened on name, and returns its handle,
// unpinned. An older handle for name is dropped.
func (r *resolver) add(name string, fd int) *dirHandle {
	if old, ok := r.cache[name]; ok {
		r.evict(old)
	}
	if len(r.cache) >= maxCachedDirs {
		var lru *dirHandle
		for _, h := range r.cache {
			if lru == nil || h.used < lru.used {
				lru = h
			}
		}
		r.evict(lru)
	}
	h := &dirHandle{fd: fd, name: name, used: r.clock}
	r.cache[name] = h
	return h
}

func (r *resolver) evict(h *dirHandle) {
	delete(r.cache, h.name)
	h.dead = true
	if h.pins == 0 {
		unix.Close(h.fd)
	}
}

// invalidate forgets every cached directory; handles still pinned stay
// open until released.
func (r *resolver) invalidate() {
	for _, h := range r.cache {
		r.evict(h)
	}
}

// open resolves name to a directory descriptor.
func (r *resolver) open(name string, create bool) (int, error) {
	if !r.noOpenat2 && len(name) < unix.PathMax {
		how := unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		}
		for try := 0; try < 4; try++ {
			fd, err := unix.Openat2(r.root.fd, name[1:], &how)
			switch {
			case err == nil:
				return fd, nil
			case errors.Is(err, unix.EAGAIN):
				// A rename elsewhere in root raced the lookup.
				continue
			case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM):
				// An old kernel, or a seccomp filter that refuses it.
				r.noOpenat2 = true
			}
			break
		}
		// Anything else, ENOENT above all, is for walk to settle: it
		// creates what is missing or returns the definitive error.
	}
	return r.walk(name, create)
}

// walk resolves name one component at a time from root, following
// symlinks inside root, creating missing directories if create is set.
func (r *resolver) walk(name string, create bool) (int, error) {
	fd, err := unix.Openat(r.root.fd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open root: %w", err)
	}
	// canon is where fd is, as real directories under root: ".." pops it,
	// and mkdirAt looks it up in the parents.
	var canon []string
	todo := splitPath(name)
	links, retries := 0, 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		if c == ".." {
			if len(canon) == 0 {
				continue // ".." at root stays at root
			}
			up, err := unix.Openat(fd, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				unix.Close(fd)
				return -1, fmt.Errorf("resolve %q: %w", shorten(name), err)
			}
			unix.Close(fd)
			fd = up
			canon = canon[:len(canon)-1]
			continue
		}
		next, err := unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
			fd = next
			canon = append(canon, c)
			retries = 0
			continue
		}
		switch {
		case errors.Is(err, unix.ENOENT) && create && retries < 8:
			retries++
			if err := r.mkdirAt(fd, c, canon); err != nil && !errors.Is(err, unix.EEXIST) {
				unix.Close(fd)
				return -1, fmt.Errorf("resolve %q: %w", shorten(name), err)
			}
			todo = append([]string{c}, todo...) // open what was made
			continue
		case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP):
			target, lerr := readlinkAt(fd, c)
			if lerr != nil {
				unix.Close(fd)
				if errors.Is(lerr, unix.EINVAL) {
					return -1, fmt.Errorf("resolve %q: %s is not a directory: %w", shorten(name), shorten(c), unix.ENOTDIR)
				}
				return -1, fmt.Errorf("resolve %q: %w", shorten(name), lerr)
			}
			if links++; links > maxSymlinks {
				unix.Close(fd)
				return -1, fmt.Errorf("resolve %q: %w", shorten(name), unix.ELOOP)
			}
			if strings.HasPrefix(target, "/") {
				// Absolute targets start again from root.
				top, err := unix.Openat(r.root.fd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if err != nil {
					unix.Close(fd)
					return -1, fmt.Errorf("open root: %w", err)
				}
				unix.Close(fd)
				fd, canon = top, canon[:0]
			}
			todo = append(splitPath(target), todo...)
			continue
		}
		unix.Close(fd)
		return -1, fmt.Errorf("resolve %q: %w", shorten(name), err)
	}
	return fd, nil
}

// shorten keeps error messages about hostile names readable.
func shorten(name string) string {
	if len(name) <= 200 {
		return name
	}
	return name[:100] + "..." + name[len(name)-80:]
}

// splitPath returns p's components without empty and "." ones.
func splitPath(p string) []string {
	parts := strings.Split(p, "/")
	out := parts[:0]
	for _, s := range parts {
		if s != "" && s != "." {
			out = append(out, s)
		}
	}
	return out
}

// readlinkAt reads the symlink base in dirfd.
func readlinkAt(dirfd int, base string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, base, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size >= 1<<16 {
			return "", unix.ENAMETOOLONG
		}
	}
}
