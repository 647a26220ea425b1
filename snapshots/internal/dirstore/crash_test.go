package dirstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/snapshots/storage"
)

// The crash test runs this test binary again as a snapshotter that dies by
// SIGKILL, as the daemon would under kill -9.
const crashRootEnv = "DIRSTORE_CRASH_ROOT"

func TestMain(m *testing.M) {
	if root := os.Getenv(crashRootEnv); root != "" {
		err := crashInstalling(root)
		fmt.Fprintln(os.Stderr, "still alive:", err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// crashInstalling creates a snapshot as the snapshotters do and kills
// itself after its directory is installed, before the record commits.
func crashInstalling(root string) error {
	ctx := context.Background()
	s, err := Open(ctx, root)
	if err != nil {
		return err
	}
	tmp, err := s.Dirs.Temp()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp.Path, "from-the-crash"), nil, 0o644); err != nil {
		return err
	}
	return s.MS.WithTransaction(ctx, true, func(ctx context.Context) error {
		sn, err := storage.CreateSnapshot(ctx, snapshots.KindActive, "crashed", "")
		if err != nil {
			return err
		}
		if _, err := tmp.Install(sn.ID); err != nil {
			return err
		}
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	})
}

// createWithFile creates snapshot key with a directory holding one file,
// as a snapshotter's Prepare does.
func createWithFile(t *testing.T, s *Store, key, file string) storage.Snapshot {
	t.Helper()
	ctx := context.Background()
	tmp, err := s.Dirs.Temp()
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	if err := os.WriteFile(filepath.Join(tmp.Path, file), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sn, err := s.Create(ctx, snapshots.KindActive, key, "", "", tmp, nil)
	if err != nil {
		t.Fatalf("create %q after the crash: %v", key, err)
	}
	return sn
}

// A kill between installing a snapshot's directory and committing its
// record leaves a directory named by the ID the next create allocates
// again. That create, after a restart, must still succeed, with a
// directory of its own, and the leftover must go.
func TestKill9BetweenInstallAndRecord(t *testing.T) {
	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashRootEnv+"="+root)
	cmd.Stderr = os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("snapshotter ended with %v, want death by SIGKILL", err)
	}
	dir := filepath.Join(root, "snapshots")
	if got := names(t, dir); got != "1" {
		t.Fatalf("after the crash: %q, want the installed directory 1 alone", got)
	}

	for restart := range 2 {
		s, err := Open(context.Background(), root)
		if err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("after-restart-%d", restart)
		sn := createWithFile(t, s, key, key)
		if restart == 0 && sn.ID != "1" {
			t.Errorf("first create got ID %s; the test means the crashed create's ID 1", sn.ID)
		}
		if got := names(t, s.Dirs.Path(sn.ID)); got != key {
			t.Errorf("directory of %s holds %q, want only its own file", key, got)
		}
		if _, err := s.Stat(context.Background(), "crashed"); err == nil {
			t.Error("the crashed create's record survived")
		}
		s.Close()
	}
	if got := names(t, dir); got != "1 2" {
		t.Errorf("snapshot directories %q, want 1 2", got)
	}
}

// The same without a restart: a failed transaction whose undo did not
// happen, as a crash leaves it, must not block the next create in the
// same run either.
func TestCreateOverUnrecordedDirectory(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tmp, err := s.Dirs.Temp()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp.Path, "from-the-crash"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	crash := errors.New("crash")
	err = s.MS.WithTransaction(ctx, true, func(ctx context.Context) error {
		sn, err := storage.CreateSnapshot(ctx, snapshots.KindActive, "crashed", "")
		if err == nil {
			_, err = tmp.Install(sn.ID) // and no undo
		}
		if err == nil {
			err = crash
		}
		return err
	})
	if err != crash {
		t.Fatal(err)
	}
	sn := createWithFile(t, s, "next", "own")
	if got := names(t, s.Dirs.Path(sn.ID)); got != "own" {
		t.Errorf("directory of next holds %q, want only its own file", got)
	}
	if got := names(t, filepath.Join(root, "snapshots")); got != sn.ID {
		t.Errorf("snapshot directories %q, want %s alone", got, sn.ID)
	}
}
