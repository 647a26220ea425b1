package shim

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// defaultSocketDir is where shims put their sockets unless the daemon
	// gives a socket_dir: containerd's, which every generation of its runc
	// shim uses whatever the daemon's state directory.
	defaultSocketDir = "/run/containerd/s"
	// maxSocketPath is the longest socket path: sun_path is 108 bytes with
	// its terminating NUL; containerd keeps one more byte of margin.
	maxSocketPath = 106
	// minSocketHash is the fewest hex digits of the hash a socket name is
	// cut to in a long socket_dir: 128 bits still never collide.
	minSocketHash = 32
)

// socketPath names the socket of the shim that serves group in namespace
// for the daemon at grpcAddress: the sha256 of the three, as containerd's
// shims name theirs, so that every start of a task of the group finds the
// same socket, and daemons on other addresses, or other namespaces, never
// share a shim. In a socket_dir too long for the full hash, the hash is
// cut; the name stays a function of the inputs.
func socketPath(dir, grpcAddress, namespace, group string) (string, error) {
	if dir == "" {
		dir = defaultSocketDir
	}
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("socket directory %q is not absolute", dir)
	}
	dir = filepath.Clean(dir)
	sum := sha256.Sum256([]byte(filepath.Join(grpcAddress, namespace, group)))
	name := hex.EncodeToString(sum[:])
	if room := maxSocketPath - len(dir) - 1; room < len(name) {
		if room < minSocketHash {
			return "", fmt.Errorf("socket directory %s is too long for a unix socket path (at most %d bytes with a %d-byte name)",
				dir, maxSocketPath, minSocketHash)
		}
		name = name[:room]
	}
	return dir + "/" + name, nil
}

// claimSocket listens on path, unless a live shim already does: then it
// returns joined, and the caller's task joins that shim.
//
// Two starts of tasks of one group may run at once (a pod's containers),
// and a shim that died leaves its socket file behind. Telling a live socket
// from a stale one and replacing the stale one must be one step, or one
// start could remove the socket the other just made. So the whole of it
// runs under an exclusive lock on the socket directory, which every start
// takes for a few system calls only.
func claimSocket(path string) (l *net.UnixListener, joined bool, err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create socket directory: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, false, err
	}
	defer unlock()

	l, err = listenUnix(path)
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		return l, false, err
	}
	// Something is there. Connecting succeeds as soon as a shim listens,
	// even before it serves: the kernel queues the connection.
	conn, derr := net.DialTimeout("unix", path, time.Second)
	if derr == nil {
		conn.Close()
		return nil, true, nil
	}
	// Only a refused connection says nobody listens; a full backlog
	// (EAGAIN) is a live shim that is slow, whose socket must stay.
	if !errors.Is(derr, syscall.ECONNREFUSED) {
		return nil, false, fmt.Errorf("shim socket %s exists but does not answer: %w", path, derr)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() != os.ModeSocket {
		return nil, false, fmt.Errorf("shim socket path %s is taken by a file that is no socket", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("remove stale shim socket: %w", err)
	}
	l, err = listenUnix(path)
	return l, false, err
}

// listenUnix listens on path, readable by its owner only: the daemon.
func listenUnix(path string) (*net.UnixListener, error) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close() // removes the socket file
		return nil, fmt.Errorf("restrict shim socket: %w", err)
	}
	return l, nil
}

func lockDir(dir string) (unlock func(), err error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open socket directory to lock: %w", err)
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lock socket directory %s: %w", dir, err)
	}
	return func() { unix.Close(fd) }, nil
}

// unixPath is the file of a unix:// address.
func unixPath(address string) string {
	return strings.TrimPrefix(address, "unix://")
}
