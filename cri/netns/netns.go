// Package netns makes persistent network namespaces for pods: a new
// namespace bind mounted onto a file, so that it outlives every process in
// it (the pause container may die and be replaced; CNI must still find the
// namespace to tear the network down) and the daemon's restarts.
package netns

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// DefaultDir is where pods' namespaces are mounted unless the plugin keeps
// them in its state directory, as in containerd (and `ip netns` lists them).
const DefaultDir = "/var/run/netns"

// nsfsMagic is the filesystem type of namespace files (NSFS_MAGIC).
const nsfsMagic = 0x6e736673

// NetNS is a persistent network namespace, known by its mount path.
type NetNS struct {
	path string
}

// New makes a new network namespace mounted at dir/cni-<random>.
func New(dir string) (*NetNS, error) {
	return mountAt(dir, func(path string) error {
		// Unshare on a thread of its own: the thread's network namespace
		// changes, so it must never run other goroutines again. Leaving it
		// locked when the goroutine ends makes the Go runtime end the
		// thread.
		errc := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				errc <- fmt.Errorf("unshare network namespace: %w", err)
				return
			}
			errc <- bindNetNS(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()), path)
		}()
		return <-errc
	})
}

// FromProcess mounts the network namespace process pid is in at
// dir/cni-<random>, as New names its own, so that it outlives the process.
func FromProcess(dir string, pid int) (*NetNS, error) {
	return mountAt(dir, func(path string) error {
		return bindNetNS(fmt.Sprintf("/proc/%d/ns/net", pid), path)
	})
}

// mountAt makes a mount point dir/cni-<random> and has bind mount a
// namespace on it; the mount point goes if bind fails.
func mountAt(dir string, bind func(path string) error) (*NetNS, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("netns directory: %w", err)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "cni-"+hex.EncodeToString(b[:]))
	// O_EXCL so that a namespace never lands on another's.
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return nil, fmt.Errorf("netns mount point: %w", err)
	}
	f.Close()
	if err := bind(path); err != nil {
		os.Remove(path)
		return nil, err
	}
	return &NetNS{path: path}, nil
}

func bindNetNS(src, path string) error {
	if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount network namespace on %s: %w", path, err)
	}
	return nil
}

// Load returns the namespace mounted at path (after a restart); it may be
// gone already (Closed says).
func Load(path string) *NetNS { return &NetNS{path: path} }

// Path is the namespace's mount path, what CNI and OCI specs name.
func (n *NetNS) Path() string { return n.path }

// Remove unmounts the namespace and deletes its file; removing a removed
// namespace does nothing. The kernel frees the namespace once no process
// is left in it.
func (n *NetNS) Remove() error {
	if err := unix.Unmount(n.path, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		// EINVAL: not a mount point (unmounted already).
		return fmt.Errorf("unmount network namespace %s: %w", n.path, err)
	}
	if err := os.Remove(n.path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove network namespace %s: %w", n.path, err)
	}
	return nil
}

// Closed reports whether the namespace is no longer mounted at its path.
func (n *NetNS) Closed() (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(n.path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return true, nil
		}
		return false, fmt.Errorf("network namespace %s: %w", n.path, err)
	}
	return int64(st.Type) != nsfsMagic, nil
}

// Do runs f on a thread that has entered the namespace. The thread goes
// back to its own namespace afterwards, or, if it cannot, ends with f's
// goroutine so that no other goroutine ever runs in the pod's namespace.
func (n *NetNS) Do(f func() error) error {
	target, err := os.Open(n.path)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", n.path, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		orig, err := os.Open(self)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s: %w", n.path, err)
			return
		}
		ferr := f()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}
