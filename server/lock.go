package server

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// lockFile is the file in the root and in the state directory that a
// daemon holds locked for as long as it runs.
const lockFile = "daemon.lock"

// lockDir takes the daemon's lock on dir, which config names as what
// (root or state), and returns the open lock file, which holds the lock
// until it is closed.
//
// Two daemons must never share a root. Each plugin keeps its stores there
// as if it were alone: bolt makes a second daemon wait on its file locks
// and then fail, and the content store keeps its locks on ingests in
// memory, where another daemon cannot see them. Nor may two daemons share
// a state directory, even with roots of their own: at start-up the runtime
// takes back, or cleans up after, every task bundle it finds there, so the
// second daemon would adopt the first one's shims, or stop them and remove
// their bundles while the first still serves them. So the daemon locks
// both, before any plugin is loaded, and a second daemon is refused at
// once, naming the directory.
//
// The lock is flock(2) on a file kept open for the daemon's life, taken
// without waiting. The kernel lets go of it when the file is closed, by
// Stop or when the process dies however it dies, kill -9 included, so no
// lock outlives its daemon and none needs to be broken by hand. It belongs
// to the open file, not to the process: os.OpenFile opens it close-on-exec,
// so the shims the daemon starts do not inherit it and hold it on after
// the daemon dies, which would keep the next daemon out.
//
// The file holds the pid of the daemon that holds the lock, for the error
// a second daemon reports. It is written only once the lock is held and
// never truncated before, so a refused daemon never changes it.
func lockDir(dir, what string) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s lock: %w", what, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s %s is in use by another daemon%s", what, dir, holder(f))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.WriteAt(pid, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return f, nil
}

// holder describes the pid in a lock file held by another daemon, or says
// nothing when there is none yet: the holder may have the lock and not
// have written its pid.
func holder(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:n])))
	if err != nil || pid <= 0 {
		return ""
	}
	return fmt.Sprintf(" (pid %d)", pid)
}

// lockDirs locks the root, then the state directory, and returns what lets
// go of both.
func lockDirs(root, state string) (func(), error) {
	rootLock, err := lockDir(root, "root")
	if err != nil {
		return nil, err
	}
	stateLock, err := lockDir(state, "state")
	if err != nil {
		rootLock.Close()
		return nil, err
	}
	return func() {
		stateLock.Close()
		rootLock.Close()
	}, nil
}
