package metadata

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/gc"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/snapshots"
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
//
// It also fronts the backing content store, whose blobs it shares between
// namespaces, and the backing snapshotters, whose snapshots it gives each
// namespace apart, and collects what no namespace references any more.
type DB struct {
	db *bolt.DB
	cs *contentStore           // nil when the DB has no backing store
	ss map[string]*snapshotter // by snapshotter name; fixed after NewDB

	// wlock is held shared by every write and collection, exclusively by
	// Close, which so waits for them to finish.
	wlock sync.RWMutex

	// dirty counts the deletions since the last collection; dirtyContent
	// says whether any removed a blob or ingest record, so that the backing
	// store needs a look.
	dirty        atomic.Uint32
	dirtyContent atomic.Bool

	// dirtySS names the snapshotters that lost snapshot records since
	// their last cleanup. It starts with all of them, so that the first
	// collection also finds what a crash left in the backing stores.
	dirtySSMu sync.Mutex
	dirtySS   map[string]struct{}

	// images and containers are the records, decoded, that reads answer
	// from (see index.go).
	images     *objectIndex[images.Image]
	containers *objectIndex[containers.Container]

	// commits runs every write transaction but the collector's, batching
	// concurrent ones.
	commits commitQueue

	// mutationCallbacks, guarded by wlock, hear of every committed write.
	mutationCallbacks []func(dirty bool)

	schedulerMu sync.Mutex
	scheduler   gc.Scheduler
}

// NewDB wraps an open bolt database, the content store whose blobs the
// namespaces share and the snapshotters, by name, whose snapshots they
// keep apart. cs may be nil for a DB that keeps no content, snapshotters
// nil for one that keeps no snapshots. Call Init before using it.
//
// The DB does not own the backing stores: closing it closes neither.
func NewDB(db *bolt.DB, cs content.Store, snapshotters map[string]snapshots.Snapshotter) *DB {
	m := &DB{
		db:      db,
		ss:      make(map[string]*snapshotter, len(snapshotters)),
		dirtySS: make(map[string]struct{}, len(snapshotters)),

		images:     newObjectIndex[images.Image](),
		containers: newObjectIndex[containers.Container](),
	}
	if cs != nil {
		m.cs = newContentStore(m, cs)
	}
	for name, sn := range snapshotters {
		m.ss[name] = newSnapshotter(m, name, sn)
		m.dirtySS[name] = struct{}{}
	}
	return m
}

// Open opens or creates the bolt database at path and brings its schema up
// to date. It waits for the file lock until openTimeout or the deadline of
// ctx, whichever comes first. cs and snapshotters are as for NewDB.
func Open(ctx context.Context, path string, cs content.Store, snapshotters map[string]snapshots.Snapshotter) (*DB, error) {
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

	// The free page list is not written with each commit but rebuilt by a
	// scan on open, as containerd does: a commit writes fewer pages, and a
	// damaged freelist, a known way for bbolt files to break, cannot be.
	bdb, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: timeout, NoFreelistSync: true})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open metadata database %s: database is locked by another process (gave up after %v): %w",
			path, timeout, errdefs.ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("open metadata database %s: %w", path, err)
	}

	db := NewDB(bdb, cs, snapshotters)
	if err := db.Init(ctx); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("initialize metadata database %s: %w", path, err)
	}
	return db, nil
}

// Close closes the underlying bolt database, releasing its file lock. It
// waits for a collection in progress.
func (m *DB) Close() error {
	m.wlock.Lock()
	defer m.wlock.Unlock()
	return m.db.Close()
}

// ContentStore returns the namespaced view of the backing content store,
// or nil if the DB has none.
func (m *DB) ContentStore() content.Store {
	if m.cs == nil {
		return nil
	}
	return m.cs
}

// Snapshotter returns the namespaced view of the backing snapshotter name,
// or nil if the DB has no such snapshotter.
func (m *DB) Snapshotter(name string) snapshots.Snapshotter {
	if sn, ok := m.ss[name]; ok {
		return sn
	}
	return nil
}

// View runs fn in a read-only transaction.
func (m *DB) View(fn func(*bolt.Tx) error) error {
	return m.db.View(fn)
}

// Update runs fn in a read-write transaction. Everything fn changes is
// committed together or, if fn fails, not at all; callers rely on this to
// never leave half a change on disk. Update returns once the commit is on
// disk.
//
// Concurrent calls share transactions, and so the two syncs of each commit
// (group commit, see commitQueue). fn may therefore run more than once: it
// must change nothing but tx, and must set afresh, on every run, whatever
// it hands back to its caller. Work outside the database belongs before
// or after Update, or in updateAlone.
//
// A collection is one more transaction in the line (see GarbageCollect).
// Update tells the mutation callbacks of each commit. fn must not call
// Update itself.
func (m *DB) Update(fn func(*bolt.Tx) error) error {
	return m.write(fn, false)
}

// updateAlone is Update for fn that acts outside the database too, on a
// backing store, which a rerun would repeat: it runs fn once, in a
// transaction of its own.
func (m *DB) updateAlone(fn func(*bolt.Tx) error) error {
	return m.write(fn, true)
}

func (m *DB) write(fn func(*bolt.Tx) error, alone bool) error {
	m.wlock.RLock()
	defer m.wlock.RUnlock()
	if err := m.commits.run(m.db, fn, alone); err != nil {
		return err
	}
	dirty := m.dirty.Load() > 0
	for _, cb := range m.mutationCallbacks {
		cb(dirty)
	}
	return nil
}

// RegisterMutationCallback has fn called after every committed Update,
// told whether anything was deleted since the last collection. fn runs
// in the writer's call, before it returns, so it must be quick and must
// not touch the DB.
func (m *DB) RegisterMutationCallback(fn func(dirty bool)) {
	m.wlock.Lock()
	defer m.wlock.Unlock()
	m.mutationCallbacks = append(m.mutationCallbacks, fn)
}

// SetScheduler routes the collections that synchronous deletes wait for
// through s, so they count toward its pacing and share its runs. Without
// one they call GarbageCollect directly.
func (m *DB) SetScheduler(s gc.Scheduler) {
	m.schedulerMu.Lock()
	defer m.schedulerMu.Unlock()
	m.scheduler = s
}

// collect runs a collection that starts after the caller's last change and
// waits for it.
func (m *DB) collect(ctx context.Context) error {
	m.schedulerMu.Lock()
	s := m.scheduler
	m.schedulerMu.Unlock()

	var err error
	if s != nil {
		_, err = s.ScheduleAndWait(ctx)
	} else {
		_, err = m.GarbageCollect(ctx)
	}
	if err != nil {
		return fmt.Errorf("garbage collection: %w", err)
	}
	return nil
}

// markDirty records, from within a write transaction, that something was
// deleted and the next collection has work; content says a blob or ingest
// record went, which leaves work in the backing store too.
func (m *DB) markDirty(content bool) {
	m.dirty.Add(1)
	if content {
		m.dirtyContent.Store(true)
	}
}

// markSnapshotterDirty records, from within a write transaction, that a
// snapshot record of snapshotter name was deleted, which leaves work in
// that backing snapshotter.
func (m *DB) markSnapshotterDirty(name string) {
	m.dirty.Add(1)
	m.dirtySSMu.Lock()
	m.dirtySS[name] = struct{}{}
	m.dirtySSMu.Unlock()
}

// takeDirtySnapshotters returns the dirty snapshotters and clears the set.
func (m *DB) takeDirtySnapshotters() []string {
	m.dirtySSMu.Lock()
	defer m.dirtySSMu.Unlock()
	names := slices.Sorted(maps.Keys(m.dirtySS))
	clear(m.dirtySS)
	return names
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
	if err != nil && !errors.Is(err, errUpToDate) {
		return err
	}
	return m.db.View(func(tx *bolt.Tx) error {
		if err := m.images.load(tx, getImagesBucket, readImage); err != nil {
			return fmt.Errorf("load images: %w", err)
		}
		if err := m.containers.load(tx, getContainersBucket, readContainer); err != nil {
			return fmt.Errorf("load containers: %w", err)
		}
		return nil
	})
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
