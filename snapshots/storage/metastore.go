// Package storage keeps the records of a snapshotter's snapshots in a bolt
// database: kinds, parents, labels, recorded usage, and the numeric ID each
// snapshot's files are stored under.
//
// Keys come from clients and may hold anything, "../x" included; they are
// only ever bolt keys. Snapshotters name directories after IDs alone.
//
// The functions that read and write records take a context from
// TransactionContext or WithTransaction, so that a snapshotter can group
// several of them, and its filesystem changes, around one transaction.
package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
)

// openTimeout bounds the wait for bolt's file lock, so that a second daemon
// on the same root fails instead of hanging.
const openTimeout = 5 * time.Second

// ErrNoTransaction is returned by the record functions when the context
// carries no transaction.
var ErrNoTransaction = errors.New("no snapshot metadata transaction in context")

// Transactor ends a transaction begun by TransactionContext. Exactly one of
// its methods must be called; read-only transactions can only be rolled
// back.
type Transactor interface {
	Commit() error
	Rollback() error
}

// MetaStore is a snapshotter's metadata database.
type MetaStore struct {
	mu sync.RWMutex // guards db against Close
	db *bolt.DB
}

// NewMetaStore opens or creates the database at path. It holds the file's
// lock until Close, so two snapshotters cannot share a root.
func NewMetaStore(path string) (*MetaStore, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create snapshot metadata directory: %w", err)
	}
	// No freelist is written with each commit, as for the daemon's
	// metadata database: fewer pages per commit, none to be damaged.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout, NoFreelistSync: true})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open snapshot metadata %s: locked by another process: %w", path, errdefs.ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("open snapshot metadata %s: %w", path, err)
	}
	return &MetaStore{db: db}, nil
}

type transactionKey struct{}

// TransactionContext begins a transaction and returns a context carrying
// it, for the record functions. The caller ends it with the Transactor.
func (ms *MetaStore) TransactionContext(ctx context.Context, writable bool) (context.Context, Transactor, error) {
	ms.mu.RLock()
	db := ms.db
	ms.mu.RUnlock()
	if db == nil {
		return ctx, nil, fmt.Errorf("snapshot metadata is closed: %w", errdefs.ErrUnavailable)
	}
	tx, err := db.Begin(writable)
	if err != nil {
		return ctx, nil, fmt.Errorf("begin snapshot metadata transaction: %w", err)
	}
	return context.WithValue(ctx, transactionKey{}, tx), tx, nil
}

// WithTransaction runs fn in a transaction. A writable transaction is
// committed if fn succeeds; otherwise, and always for a read-only one, it
// is rolled back.
func (ms *MetaStore) WithTransaction(ctx context.Context, writable bool, fn func(ctx context.Context) error) error {
	tctx, tx, err := ms.TransactionContext(ctx, writable)
	if err != nil {
		return err
	}
	if err := fn(tctx); err != nil {
		if rerr := tx.Rollback(); rerr != nil {
			log.G(ctx).WithError(rerr).Warn("roll back snapshot metadata transaction")
		}
		return err
	}
	if !writable {
		return tx.Rollback()
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit snapshot metadata transaction: %w", err)
	}
	return nil
}

// Close closes the database, waiting for open transactions. Closing twice
// is not an error.
func (ms *MetaStore) Close() error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.db == nil {
		return nil
	}
	err := ms.db.Close()
	ms.db = nil
	return err
}

func txFrom(ctx context.Context) (*bolt.Tx, error) {
	tx, ok := ctx.Value(transactionKey{}).(*bolt.Tx)
	if !ok {
		return nil, ErrNoTransaction
	}
	return tx, nil
}
