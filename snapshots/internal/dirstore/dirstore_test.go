package dirstore

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/snapshots/storage"
)

func names(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// TestCrashLeftovers checks what a restart and Cleanup make of what a
// crash can leave: half-filled and half-removed directories, and one
// installed whose record was lost.
func TestCrashLeftovers(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dir := filepath.Join(root, "snapshots")
	for _, d := range []string{"new-123", "rm-7", "99", "rm-8/deep"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := names(t, dir); got != "99" {
		t.Fatalf("after opening: %q, want the orphan only", got)
	}

	tmp, err := s.Dirs.Temp()
	if err != nil {
		t.Fatal(err)
	}
	var sn storage.Snapshot
	err = s.MS.WithTransaction(ctx, true, func(ctx context.Context) (err error) {
		sn, err = storage.CreateSnapshot(ctx, snapshots.KindActive, "k", "")
		if err == nil {
			_, err = tmp.Install(sn.ID)
		}
		return err
	})
	tmp.Close()
	if err != nil {
		t.Fatal(err)
	}
	inflight, err := s.Dirs.Temp()
	if err != nil {
		t.Fatal(err)
	}
	txid := func() int {
		_, tx, err := s.MS.TransactionContext(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		return tx.(interface{ ID() int }).ID()
	}
	before := txid()
	if err := s.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	// Listing writes no record, so it must not cost a commit.
	if after := txid(); after != before {
		t.Errorf("cleanup committed a transaction: txid %d -> %d", before, after)
	}
	if got, want := names(t, dir), sn.ID+" "+filepath.Base(inflight.Path); got != want {
		t.Errorf("after cleanup: %q, want %q", got, want)
	}
	inflight.Close()
	if got := names(t, dir); got != sn.ID {
		t.Errorf("after closing the temporary directory: %q", got)
	}
}

func TestFailedCreateLeavesNothing(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Create(ctx, snapshots.KindActive, "k", "", "", nil, nil); err != nil {
		t.Fatal(err)
	}
	tmp, err := s.Dirs.Temp()
	if err != nil {
		t.Fatal(err)
	}
	// The key is taken: the record fails, and the directory must go.
	if _, err := s.Create(ctx, snapshots.KindActive, "k", "", "", tmp, nil); err == nil {
		t.Fatal("created a key twice")
	}
	tmp.Close()
	if got := names(t, filepath.Join(root, "snapshots")); got != "" {
		t.Errorf("left behind: %q", got)
	}
}

func TestDiskUsage(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), make([]byte, 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "f"), filepath.Join(dir, "g")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	u, err := DiskUsage(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	// The root, d, and f counted once for its two names.
	if u.Inodes != 3 || u.Size < 10000 || u.Size > 10000+3*64<<10 {
		t.Errorf("usage %+v", u)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := DiskUsage(ctx, dir); err != context.Canceled {
		t.Errorf("canceled: %v", err)
	}
}
