package metadata

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/llitfkitfk/containerd/errdefs"
)

// openTestDB opens a fresh database in a temporary directory and closes it
// when the test ends.
func openTestDB(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := Open(context.Background(), path, nil, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

// writeRaw builds a database file by hand, bypassing Init.
func writeRaw(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	if err := bdb.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func setVersion(v int64) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		bkt, err := tx.CreateBucketIfNotExists(bucketKeyVersion)
		if err != nil {
			return err
		}
		return bkt.Put(bucketKeyDBVersion, binary.AppendVarint(nil, v))
	}
}

func storedVersion(t *testing.T, db *DB) int64 {
	t.Helper()
	var v int64
	err := db.View(func(tx *bolt.Tx) error {
		bkt := tx.Bucket([]byte("v1"))
		if bkt == nil {
			return errors.New("no v1 bucket")
		}
		var err error
		v, err = readVersion(bkt)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestInitWritesSchemaVersion(t *testing.T) {
	db, _ := openTestDB(t)
	err := db.View(func(tx *bolt.Tx) error {
		bkt := tx.Bucket([]byte("v1"))
		if bkt == nil {
			t.Fatal("no v1 bucket")
		}
		// Zig-zag varint of 4, as containerd writes it.
		if got, want := bkt.Get([]byte("version")), []byte{0x08}; !bytes.Equal(got, want) {
			t.Errorf("version bytes = %x, want %x", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := storedVersion(t, db); v != dbVersion {
		t.Errorf("version = %d, want %d", v, dbVersion)
	}
	// A second Init on an up-to-date database is a no-op.
	if err := db.Init(context.Background()); err != nil {
		t.Fatalf("second Init: %v", err)
	}
}

func TestInitRefusesNewerVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	writeRaw(t, path, setVersion(dbVersion+1))

	_, err := Open(context.Background(), path, nil, nil)
	if !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Open = %v, want FailedPrecondition", err)
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error %q does not say the database is newer", err)
	}

	// The refusal must release the lock and leave the version untouched.
	bdb, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("reopen after refusal: %v", err)
	}
	db := NewDB(bdb, nil, nil)
	defer db.Close()
	if v := storedVersion(t, db); v != dbVersion+1 {
		t.Errorf("version = %d, want %d", v, dbVersion+1)
	}
}

func TestInitRejectsCorruptVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	writeRaw(t, path, func(tx *bolt.Tx) error {
		bkt, err := tx.CreateBucket(bucketKeyVersion)
		if err != nil {
			return err
		}
		return bkt.Put(bucketKeyDBVersion, []byte{0x80}) // truncated varint
	})
	if _, err := Open(context.Background(), path, nil, nil); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Open = %v, want FailedPrecondition", err)
	}
}

func TestInitMigratesOlderVersion(t *testing.T) {
	saved := migrations
	t.Cleanup(func() { migrations = saved })

	var ran []int64
	step := func(v int64) migration {
		return migration{version: v, migrate: func(*bolt.Tx) error {
			ran = append(ran, v)
			return nil
		}}
	}
	migrations = []migration{step(2), step(3), step(4)}

	path := filepath.Join(t.TempDir(), "meta.db")
	writeRaw(t, path, func(tx *bolt.Tx) error {
		if err := setVersion(2)(tx); err != nil {
			return err
		}
		_, err := tx.Bucket(bucketKeyVersion).CreateBucket([]byte("kept"))
		return err
	})

	db, err := Open(context.Background(), path, nil, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	if want := []int64{3, 4}; !slices.Equal(ran, want) {
		t.Errorf("ran migrations %v, want %v", ran, want)
	}
	if v := storedVersion(t, db); v != dbVersion {
		t.Errorf("version = %d, want %d", v, dbVersion)
	}
	assertList(t, db, "kept")
}

func TestInitFailedMigrationChangesNothing(t *testing.T) {
	saved := migrations
	t.Cleanup(func() { migrations = saved })
	migrations = []migration{{version: 4, migrate: func(tx *bolt.Tx) error {
		if _, err := tx.Bucket(bucketKeyVersion).CreateBucket([]byte("half")); err != nil {
			return err
		}
		return errors.New("boom")
	}}}

	path := filepath.Join(t.TempDir(), "meta.db")
	writeRaw(t, path, setVersion(3))
	if _, err := Open(context.Background(), path, nil, nil); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Open = %v, want the migration error", err)
	}

	migrations = nil
	bdb, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	db := NewDB(bdb, nil, nil)
	defer db.Close()
	if v := storedVersion(t, db); v != 3 {
		t.Errorf("version = %d, want 3", v)
	}
	assertList(t, db)
}

func TestReopenKeepsData(t *testing.T) {
	db, path := openTestDB(t)
	ctx := context.Background()
	err := db.Update(func(tx *bolt.Tx) error {
		return NewNamespaceStore(tx).Create(ctx, "keep", map[string]string{"a": "b"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(ctx, path, nil, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	assertList(t, db, "keep")
	assertLabels(t, db, "keep", map[string]string{"a": "b"})
}

func TestOpenLockedFailsFast(t *testing.T) {
	_, path := openTestDB(t)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	db, err := Open(ctx, path, nil, nil)
	if err == nil {
		db.Close()
		t.Fatal("second Open of a locked database succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("second Open took %v", d)
	}
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "locked by another process") {
		t.Errorf("error = %v, want Unavailable saying it is locked by another process", err)
	}
}

func TestUpdateRollsBackOnError(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	err := db.Update(func(tx *bolt.Tx) error {
		if err := NewNamespaceStore(tx).Create(ctx, "partial", nil); err != nil {
			return err
		}
		return errors.New("later step failed")
	})
	if err == nil {
		t.Fatal("Update returned nil")
	}
	assertList(t, db)
}

// The database is opened as containerd opens it: commits write no
// freelist, which is rebuilt by a scan on open instead. The newer of the
// file's two meta pages names no freelist page.
func TestCommitsWriteNoFreelist(t *testing.T) {
	db, path := openTestDB(t)
	if err := db.Update(func(tx *bolt.Tx) error {
		return NewNamespaceStore(tx).Create(context.Background(), "ns", nil)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A meta page: a 16-byte page header, then magic, version, page size
	// and flags (4 bytes each), the root bucket (16), the freelist's page
	// id, the high water mark and the transaction id (8 each).
	le := binary.LittleEndian
	pageSize := le.Uint32(data[24:])
	var newest, freelist uint64
	for _, off := range []uint32{0, pageSize} {
		meta := data[off+16:]
		if txid := le.Uint64(meta[48:]); txid >= newest {
			newest, freelist = txid, le.Uint64(meta[32:])
		}
	}
	if freelist != ^uint64(0) {
		t.Errorf("transaction %d wrote a freelist at page %d", newest, freelist)
	}
}
