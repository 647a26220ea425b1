package metadata

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/llitfkitfk/containerd/errdefs"
)

const (
	// schemaVersion names the top-level bucket. A layout change that old
	// readers cannot follow needs a new schema bucket and a migration.
	schemaVersion = "v1"

	// dbVersion counts the compatible revisions of schemaVersion. It is
	// containerd's current value, so that either daemon accepts the other's
	// database without migrating it.
	dbVersion = 4
)

// openTimeout bounds the wait for bolt's file lock, so that a second daemon
// on the same root fails instead of hanging.
const openTimeout = 5 * time.Second

// DB is the metadata database. Stores are bound to the transactions it runs.
type DB struct {
	db *bolt.DB
}

// NewDB wraps an open bolt database. Call Init before using it.
func NewDB(db *bolt.DB) *DB {
	return &DB{db: db}
}

// Open opens or creates the bolt database at path and brings its schema up
// to date. It waits for the file lock until openTimeout or the deadline of
// ctx, whichever comes first.
func Open(ctx context.Context, path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, fmt.Errorf("create metadata directory: %w", err)
	}

	timeout := openTimeout
	if deadline, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(deadline))
		if timeout <= 0 {
			return nil, fmt.Errorf("open metadata database %s: %w", path, context.DeadlineExceeded)
		}
	}

	bdb, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open metadata database %s: database is locked by another process (gave up after %v): %w",
			path, timeout, errdefs.ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("open metadata database %s: %w", path, err)
	}

	db := NewDB(bdb)
	if err := db.Init(ctx); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("initialize metadata database %s: %w", path, err)
	}
	return db, nil
}

// Close closes the underlying bolt database, releasing its file lock.
func (m *DB) Close() error {
	return m.db.Close()
}

// View runs fn in a read-only transaction.
func (m *DB) View(fn func(*bolt.Tx) error) error {
	return m.db.View(fn)
}

// Update runs fn in a read-write transaction. Everything fn changes is
// committed together or, if fn fails, not at all; callers rely on this to
// never leave half a change on disk.
func (m *DB) Update(fn func(*bolt.Tx) error) error {
	return m.db.Update(fn)
}

// Init creates the schema in an empty database, migrates an older one and
// refuses one written by a newer daemon, whose data it might misread.
func (m *DB) Init(ctx context.Context) error {
	// errUpToDate rolls back the transaction so an up-to-date database is
	// opened without a write.
	errUpToDate := errors.New("up to date")

	err := m.db.Update(func(tx *bolt.Tx) error {
		bkt := tx.Bucket(bucketKeyVersion)
		if bkt == nil {
			return initSchema(tx)
		}
		version, err := readVersion(bkt)
		if err != nil {
			return err
		}
		switch {
		case version > dbVersion:
			return fmt.Errorf("metadata schema %s.%d is newer than the %s.%d this daemon supports; refusing to open it: %w",
				schemaVersion, version, schemaVersion, dbVersion, errdefs.ErrFailedPrecondition)
		case version == dbVersion:
			return errUpToDate
		}
		if err := migrate(tx, version); err != nil {
			return err
		}
		return writeVersion(bkt)
	})
	if errors.Is(err, errUpToDate) {
		return nil
	}
	return err
}

func initSchema(tx *bolt.Tx) error {
	bkt, err := tx.CreateBucket(bucketKeyVersion)
	if err != nil {
		return fmt.Errorf("create schema bucket: %w", err)
	}
	return writeVersion(bkt)
}

// readVersion returns the schema revision in bkt; a schema bucket without
// one predates revisions and counts as 0.
func readVersion(bkt *bolt.Bucket) (int64, error) {
	b := bkt.Get(bucketKeyDBVersion)
	if b == nil {
		return 0, nil
	}
	v, n := binary.Varint(b)
	if n <= 0 {
		return 0, fmt.Errorf("metadata schema version %x is not a varint: %w", b, errdefs.ErrFailedPrecondition)
	}
	return v, nil
}

// writeVersion stores dbVersion as a signed varint, the encoding containerd
// reads it with.
func writeVersion(bkt *bolt.Bucket) error {
	buf := binary.AppendVarint(nil, dbVersion)
	if err := bkt.Put(bucketKeyDBVersion, buf); err != nil {
		return fmt.Errorf("write metadata schema version: %w", err)
	}
	return nil
}
