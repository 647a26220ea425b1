package sys

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLocalListenerPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "containerd")
	path := filepath.Join(dir, "containerd.sock")
	l, err := GetLocalListener(path, os.Getuid(), os.Getgid())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode = %v, want socket 0660", fi.Mode())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o711 {
		t.Fatalf("socket dir mode = %v, want 0711", di.Mode().Perm())
	}
}

func TestLocalListenerRefusesLiveSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.sock")
	l, err := GetLocalListener(path, os.Getuid(), os.Getgid())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := GetLocalListener(path, os.Getuid(), os.Getgid()); !errors.Is(err, ErrSocketInUse) {
		t.Fatalf("second listener: err = %v, want ErrSocketInUse", err)
	}
}

func TestLocalListenerReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.sock")
	// A listener closed without unlinking leaves a socket nobody answers.
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l2, err := GetLocalListener(path, os.Getuid(), os.Getgid())
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()
}

func TestLocalListenerRefusesNonSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := GetLocalListener(path, os.Getuid(), os.Getgid()); err == nil {
		t.Fatal("a regular file was replaced by a socket")
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Fatal("regular file changed")
	}
}

func TestCheckSocket(t *testing.T) {
	dir := t.TempDir()
	if err := CheckSocket(filepath.Join(dir, "absent.sock")); err != nil {
		t.Fatalf("absent socket: %v", err)
	}

	live := filepath.Join(dir, "live.sock")
	l, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := CheckSocket(live); !errors.Is(err, ErrSocketInUse) || !strings.Contains(err.Error(), live) {
		t.Fatalf("live socket: err = %v, want ErrSocketInUse naming %s", err, live)
	}

	stale := filepath.Join(dir, "stale.sock")
	sl, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	sl.(*net.UnixListener).SetUnlinkOnClose(false)
	sl.Close()
	if err := CheckSocket(stale); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	// Checking changes nothing; the listener replaces the file later.
	if _, err := os.Lstat(stale); err != nil {
		t.Fatalf("check removed the stale socket: %v", err)
	}

	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if err := CheckSocket(file); err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("regular file: err = %v, want an error naming it", err)
	}
}
