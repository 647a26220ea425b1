package server

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A second server on the root, or on the state directory, of a running one
// is refused, naming the directory, and the first one's lock holds its pid.
func TestBusyRootOrStateRefused(t *testing.T) {
	first := testConfig(t)
	s, err := New(context.Background(), first)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	if b, _ := os.ReadFile(filepath.Join(first.Root, lockFile)); strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("root lock file holds %q, want this pid", b)
	}

	sameRoot := testConfig(t)
	sameRoot.Root = first.Root
	sameState := testConfig(t)
	sameState.State = first.State
	for _, tc := range []struct {
		config *Config
		want   string
	}{
		{sameRoot, "root " + first.Root + " is in use by another daemon (pid " + strconv.Itoa(os.Getpid()) + ")"},
		{sameState, "state " + first.State + " is in use by another daemon"},
	} {
		s2, err := New(context.Background(), tc.config)
		if err == nil {
			s2.Stop(context.Background())
			t.Fatalf("second server started; want %q", tc.want)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
	// The refused servers changed nothing of the first one's...
	if b, _ := os.ReadFile(filepath.Join(first.Root, lockFile)); strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("a refused server changed the lock file: %q", b)
	}
	// ...and let go of what they had locked: the one refused for the
	// state had its own root locked by then.
	free := testConfig(t)
	free.Root = sameState.Root
	s3, err := New(context.Background(), free)
	if err != nil {
		t.Fatalf("root of a refused server still locked: %v", err)
	}
	s3.Stop(context.Background())
}

// Stop, and a New that fails, let go of the directories; a process the
// daemon started (a shim) does not keep them locked.
func TestLocksReleased(t *testing.T) {
	c := testConfig(t)
	c.RequiredPlugins = []string{"io.containerd.test.v1.absent"}
	if _, err := New(context.Background(), c); err == nil {
		t.Fatal("started without a required plugin")
	}
	c.RequiredPlugins = nil
	s, err := New(context.Background(), c)
	if err != nil {
		t.Fatalf("after a failed start: %v", err)
	}
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		child.Process.Kill()
		child.Wait()
	}()
	s.Stop(context.Background())
	s, err = New(context.Background(), c)
	if err != nil {
		t.Fatalf("after Stop, with a child of the first still running: %v", err)
	}
	s.Stop(context.Background())
}

func TestRootAndStateMustDiffer(t *testing.T) {
	c := testConfig(t)
	c.State = c.Root + "/"
	if _, err := New(context.Background(), c); err == nil || !strings.Contains(err.Error(), "different") {
		t.Fatalf("err = %v, want root and state refused as the same path", err)
	}
}
