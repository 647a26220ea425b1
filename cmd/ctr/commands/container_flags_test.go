package commands

import (
	gocontext "context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/errdefs"
)

func TestWritePidFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pid")
	if err := os.WriteFile(path, []byte("old pid"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WritePidFile(path, 1234); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "1234" {
		t.Fatalf("pid file %q, %v", b, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Fatalf("left beside the pid file: %v", entries)
	}
	if err := WritePidFile(filepath.Join(t.TempDir(), "no", "pid"), 1); err == nil {
		t.Fatal("pid file in a missing directory written")
	}
}

type killRecorder chan syscall.Signal

func (k killRecorder) Kill(_ gocontext.Context, sig syscall.Signal, _ ...client.KillOpts) error {
	k <- sig
	if sig == syscall.SIGUSR2 {
		return errdefs.ErrNotFound
	}
	return nil
}

// Signals ctr receives reach the task; once the task is gone, forwarding
// stops.
func TestForwardAllSignals(t *testing.T) {
	k := make(killRecorder, 8)
	sigc := ForwardAllSignals(gocontext.Background(), k)
	defer StopCatch(sigc)
	for _, sig := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGUSR2} {
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-k:
			if got != sig {
				t.Fatalf("forwarded %v, want %v", got, sig)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%v not forwarded", sig)
		}
	}
}
