// Package sys holds the daemon's dealings with the operating system that are
// not a domain of their own: sockets, its own process, systemd.
package sys

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// GetLocalListener listens on a unix socket at path, owned by uid:gid with
// mode 0660, creating its directory (mode 0711) if needed. A socket file
// left by a daemon that is gone is replaced; one that a live process still
// answers on is refused, so two daemons never share an address.
func GetLocalListener(path string, uid, gid int) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// Listening leaves the socket as umask allows; set what we mean before
	// anyone else could connect through a wider mode.
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		l.Close()
		return nil, fmt.Errorf("chown %s: %w", path, err)
	}
	return l, nil
}

// ErrSocketInUse is returned when another process serves on the socket.
var ErrSocketInUse = errors.New("socket is in use by another process")

// CheckSocket tells whether path is free for a new listener, without
// changing anything: nil when nothing is there, or when the socket there
// is left by a process that is gone (a kill -9 leaves the file behind and
// nobody answers on it); an error wrapping ErrSocketInUse when a live
// process answers on it; an error when path is not a socket at all. The
// daemon calls it before loading its plugins, so that a second daemon on
// a busy address gives up at once instead of after start-up.
func CheckSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("%s: %w", path, ErrSocketInUse)
	}
	// Refused means no listener is bound to the file; gone means another
	// process removed it since the Lstat. Anything else (a full backlog,
	// no permission) cannot be told from a live listener, so the socket
	// is not ours to take.
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("probe %s: %w", path, err)
	}
	return nil
}

func removeStaleSocket(path string) error {
	if err := CheckSocket(path); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	return nil
}
