package storage

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/snapshots"
)

func newStore(t *testing.T) *MetaStore {
	t.Helper()
	ms, err := NewMetaStore(filepath.Join(t.TempDir(), "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	return ms
}

// write runs fn in a writable transaction.
func write(t *testing.T, ms *MetaStore, fn func(ctx context.Context) error) error {
	t.Helper()
	return ms.WithTransaction(context.Background(), true, fn)
}

func create(t *testing.T, ms *MetaStore, kind snapshots.Kind, key, parent string, opts ...snapshots.Opt) Snapshot {
	t.Helper()
	var s Snapshot
	err := write(t, ms, func(ctx context.Context) (err error) {
		s, err = CreateSnapshot(ctx, kind, key, parent, opts...)
		return err
	})
	if err != nil {
		t.Fatalf("create %q on %q: %v", key, parent, err)
	}
	return s
}

func commit(t *testing.T, ms *MetaStore, key, name string) string {
	t.Helper()
	var id string
	err := write(t, ms, func(ctx context.Context) (err error) {
		id, err = CommitActive(ctx, key, name, snapshots.Usage{Inodes: 3, Size: 4096})
		return err
	})
	if err != nil {
		t.Fatalf("commit %q as %q: %v", key, name, err)
	}
	return id
}

func TestNoTransaction(t *testing.T) {
	if _, _, _, err := GetInfo(context.Background(), "k"); !errors.Is(err, ErrNoTransaction) {
		t.Errorf("GetInfo without a transaction: %v", err)
	}
	if _, err := CreateSnapshot(context.Background(), snapshots.KindActive, "k", ""); !errors.Is(err, ErrNoTransaction) {
		t.Errorf("CreateSnapshot without a transaction: %v", err)
	}
}

func TestEmptyStore(t *testing.T) {
	ms := newStore(t)
	err := ms.WithTransaction(context.Background(), false, func(ctx context.Context) error {
		if _, _, _, err := GetInfo(ctx, "k"); !errdefs.IsNotFound(err) {
			t.Errorf("GetInfo: %v", err)
		}
		if _, err := GetSnapshot(ctx, "k"); !errdefs.IsNotFound(err) {
			t.Errorf("GetSnapshot: %v", err)
		}
		if m, err := IDMap(ctx); err != nil || len(m) != 0 {
			t.Errorf("IDMap: %v, %v", m, err)
		}
		return WalkInfo(ctx, func(context.Context, snapshots.Info) error {
			return errors.New("walked an empty store")
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestChain(t *testing.T) {
	ms := newStore(t)
	a := create(t, ms, snapshots.KindActive, "a", "")
	if a.ID != "1" || a.Kind != snapshots.KindActive || len(a.ParentIDs) != 0 {
		t.Errorf("first snapshot: %+v", a)
	}
	if id := commit(t, ms, "a", "A"); id != a.ID {
		t.Errorf("commit changed the ID from %s to %s", a.ID, id)
	}
	b := create(t, ms, snapshots.KindActive, "b", "A")
	commit(t, ms, "b", "B")
	c := create(t, ms, snapshots.KindView, "c", "B")
	if fmt.Sprint(c.ParentIDs) != fmt.Sprint([]string{b.ID, a.ID}) || c.Kind != snapshots.KindView {
		t.Errorf("view on B: %+v", c)
	}

	err := ms.WithTransaction(context.Background(), false, func(ctx context.Context) error {
		s, err := GetSnapshot(ctx, "c")
		if err != nil || fmt.Sprint(s) != fmt.Sprint(c) {
			t.Errorf("GetSnapshot(c) = %+v, %v; want %+v", s, err, c)
		}
		if _, err := GetSnapshot(ctx, "B"); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("GetSnapshot of a committed snapshot: %v", err)
		}
		id, info, usage, err := GetInfo(ctx, "B")
		if err != nil || id != b.ID || info.Kind != snapshots.KindCommitted || info.Parent != "A" || usage != (snapshots.Usage{Inodes: 3, Size: 4096}) {
			t.Errorf("GetInfo(B) = %s, %+v, %+v, %v", id, info, usage, err)
		}
		m, err := IDMap(ctx)
		if err != nil || fmt.Sprint(m) != fmt.Sprintf("map[%s:A %s:B %s:c]", a.ID, b.ID, c.ID) {
			t.Errorf("IDMap = %v, %v", m, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	for _, key := range []string{"A", "B"} {
		err := write(t, ms, func(ctx context.Context) error { _, _, err := Remove(ctx, key); return err })
		if !errdefs.IsFailedPrecondition(err) {
			t.Errorf("remove %s with children: %v", key, err)
		}
	}
	for _, tc := range []struct {
		key, id string
		kind    snapshots.Kind
	}{{"c", c.ID, snapshots.KindView}, {"B", b.ID, snapshots.KindCommitted}, {"A", a.ID, snapshots.KindCommitted}} {
		err := write(t, ms, func(ctx context.Context) error {
			id, kind, err := Remove(ctx, tc.key)
			if err == nil && (id != tc.id || kind != tc.kind) {
				t.Errorf("remove %s = %s, %v; want %s, %v", tc.key, id, kind, tc.id, tc.kind)
			}
			return err
		})
		if err != nil {
			t.Fatalf("remove %s: %v", tc.key, err)
		}
	}
	// IDs are never reused, so a directory left by a removal cannot be
	// taken for a new snapshot's.
	if d := create(t, ms, snapshots.KindActive, "a", ""); d.ID != "4" {
		t.Errorf("ID after removals: %s, want 4", d.ID)
	}
}

func TestCreateErrors(t *testing.T) {
	ms := newStore(t)
	create(t, ms, snapshots.KindActive, "active", "")
	create(t, ms, snapshots.KindActive, "tmp", "")
	commit(t, ms, "tmp", "committed")
	for _, tc := range []struct {
		kind        snapshots.Kind
		key, parent string
		labels      map[string]string
		is          func(error) bool
	}{
		{snapshots.KindCommitted, "x", "", nil, errdefs.IsInvalidArgument},
		{snapshots.KindUnknown, "x", "", nil, errdefs.IsInvalidArgument},
		{snapshots.KindActive, "", "", nil, errdefs.IsInvalidArgument},
		{snapshots.KindActive, strings.Repeat("k", 40000), "", nil, errdefs.IsInvalidArgument},
		{snapshots.KindActive, "active", "", nil, errdefs.IsAlreadyExists},
		{snapshots.KindView, "committed", "", nil, errdefs.IsAlreadyExists},
		{snapshots.KindActive, "x", "missing", nil, errdefs.IsNotFound},
		{snapshots.KindActive, "x", "active", nil, errdefs.IsFailedPrecondition},
		{snapshots.KindActive, "x", "", map[string]string{"": "v"}, errdefs.IsInvalidArgument},
		{snapshots.KindActive, "x", "", map[string]string{"k": strings.Repeat("v", 5000)}, errdefs.IsInvalidArgument},
	} {
		err := write(t, ms, func(ctx context.Context) error {
			_, err := CreateSnapshot(ctx, tc.kind, tc.key, tc.parent, snapshots.WithLabels(tc.labels))
			return err
		})
		if !tc.is(err) {
			t.Errorf("create %v %.20q on %q with %d labels: %v", tc.kind, tc.key, tc.parent, len(tc.labels), err)
		}
	}
	err := ms.WithTransaction(context.Background(), false, func(ctx context.Context) error {
		m, err := IDMap(ctx)
		if len(m) != 2 {
			t.Errorf("failed creates left records: %v", m)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCommitErrors(t *testing.T) {
	ms := newStore(t)
	create(t, ms, snapshots.KindActive, "a", "")
	create(t, ms, snapshots.KindActive, "b", "")
	commit(t, ms, "b", "B")
	create(t, ms, snapshots.KindView, "v", "B")
	for _, tc := range []struct {
		key, name string
		is        func(error) bool
	}{
		{"a", "B", errdefs.IsAlreadyExists},
		{"a", "a", errdefs.IsAlreadyExists},
		{"a", "", errdefs.IsInvalidArgument},
		{"v", "V", errdefs.IsFailedPrecondition},
		{"B", "B2", errdefs.IsFailedPrecondition},
		{"missing", "M", errdefs.IsNotFound},
	} {
		err := write(t, ms, func(ctx context.Context) error {
			_, err := CommitActive(ctx, tc.key, tc.name, snapshots.Usage{})
			return err
		})
		if !tc.is(err) {
			t.Errorf("commit %q as %q: %v", tc.key, tc.name, err)
		}
	}
}

func TestRollback(t *testing.T) {
	ms := newStore(t)
	boom := errors.New("boom")
	err := write(t, ms, func(ctx context.Context) error {
		if _, err := CreateSnapshot(ctx, snapshots.KindActive, "k", ""); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("WithTransaction: %v", err)
	}
	err = ms.WithTransaction(context.Background(), false, func(ctx context.Context) error {
		_, _, _, err := GetInfo(ctx, "k")
		return err
	})
	if !errdefs.IsNotFound(err) {
		t.Errorf("a failed transaction was kept: %v", err)
	}
}

// TestLayout checks the bucket layout containerd uses, so that either
// daemon can read the other's snapshotter database.
func TestLayout(t *testing.T) {
	ms := newStore(t)
	create(t, ms, snapshots.KindActive, "k", "", snapshots.WithLabels(map[string]string{"l": "v"}))
	commit(t, ms, "k", "c")
	create(t, ms, snapshots.KindActive, "child", "c")
	err := ms.WithTransaction(context.Background(), false, func(ctx context.Context) error {
		tx, err := txFrom(ctx)
		if err != nil {
			return err
		}
		v1 := tx.Bucket([]byte("v1"))
		c := v1.Bucket([]byte("snapshots")).Bucket([]byte("c"))
		child := v1.Bucket([]byte("snapshots")).Bucket([]byte("child"))
		if fmt.Sprint(c.Get([]byte("id")), c.Get([]byte("kind")), c.Get([]byte("inodes")), c.Get([]byte("size"))) != "[1] [3] [6] [128 64]" {
			t.Errorf("committed record: id %v kind %v inodes %v size %v",
				c.Get([]byte("id")), c.Get([]byte("kind")), c.Get([]byte("inodes")), c.Get([]byte("size")))
		}
		if c.Get([]byte("createdat")) == nil || c.Get([]byte("updatedat")) == nil || c.Bucket([]byte("labels")) != nil {
			t.Error("committed record: missing timestamps, or labels inherited from the active snapshot")
		}
		if string(child.Get([]byte("parent"))) != "c" || child.Get([]byte("kind"))[0] != byte(snapshots.KindActive) {
			t.Errorf("child record: parent %q kind %v", child.Get([]byte("parent")), child.Get([]byte("kind")))
		}
		if v := v1.Bucket([]byte("parents")).Get([]byte{1, 0, 2}); string(v) != "child" {
			t.Errorf("parents index: %q", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	ms, err := NewMetaStore(path)
	if err != nil {
		t.Fatal(err)
	}
	create(t, ms, snapshots.KindActive, "k", "")
	if err := ms.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ms.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, _, err := ms.TransactionContext(context.Background(), false); !errdefs.IsUnavailable(err) {
		t.Errorf("transaction after close: %v", err)
	}
	if ms, err = NewMetaStore(path); err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	err = ms.WithTransaction(context.Background(), false, func(ctx context.Context) error {
		_, _, _, err := GetInfo(ctx, "k")
		return err
	})
	if err != nil {
		t.Errorf("record after reopening: %v", err)
	}
}

// TestRebase commits snapshots prepared without a parent onto one: the
// chain is then as if they had been prepared on it, and the parent, now
// with a child, cannot be removed. Rebasing onto anything but a committed
// snapshot, or changing a parent, is refused and changes nothing.
func TestRebase(t *testing.T) {
	ms := newStore(t)
	create(t, ms, snapshots.KindActive, "a", "")
	aID := commit(t, ms, "a", "A")
	create(t, ms, snapshots.KindActive, "b", "")
	create(t, ms, snapshots.KindActive, "c", "")
	create(t, ms, snapshots.KindActive, "onA", "A")
	create(t, ms, snapshots.KindActive, "free", "")

	for _, tc := range []struct {
		key, parent string
		is          func(error) bool
	}{
		{"c", "missing", errdefs.IsNotFound},
		{"c", "b", errdefs.IsFailedPrecondition}, // active, not committed
		{"onA", "B", errdefs.IsInvalidArgument},  // has a parent already
	} {
		err := write(t, ms, func(ctx context.Context) error {
			_, err := CommitActive(ctx, tc.key, tc.key+"-done", snapshots.Usage{}, withParent(tc.parent))
			return err
		})
		if !tc.is(err) {
			t.Errorf("commit %q onto %q: %v", tc.key, tc.parent, err)
		}
	}

	var bID string
	if err := write(t, ms, func(ctx context.Context) (err error) {
		bID, err = CommitActive(ctx, "b", "B", snapshots.Usage{}, withParent("A"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Committing with the parent it already has is no rebase, and fine.
	if err := write(t, ms, func(ctx context.Context) error {
		_, err := CommitActive(ctx, "onA", "OnA", snapshots.Usage{}, withParent("A"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	v := create(t, ms, snapshots.KindView, "v", "B")
	if len(v.ParentIDs) != 2 || v.ParentIDs[0] != bID || v.ParentIDs[1] != aID {
		t.Errorf("view of rebased B: parents %v, want [%s %s]", v.ParentIDs, bID, aID)
	}
	err := ms.WithTransaction(context.Background(), false, func(ctx context.Context) error {
		_, info, _, err := GetInfo(ctx, "B")
		if err == nil && info.Parent != "A" {
			t.Errorf("B's parent is %q, want A", info.Parent)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = write(t, ms, func(ctx context.Context) error {
		_, _, err := Remove(ctx, "A")
		return err
	})
	if !errdefs.IsFailedPrecondition(err) {
		t.Errorf("remove A with rebased child B: %v", err)
	}
}

func withParent(parent string) snapshots.Opt {
	return func(info *snapshots.Info) error { info.Parent = parent; return nil }
}
