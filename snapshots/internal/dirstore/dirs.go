package dirstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/llitfkitfk/containerd/log"
)

// Names in a Dirs directory other than snapshot IDs: directories being
// filled, and directories being removed.
const (
	tempPrefix    = "new-"
	removedPrefix = "rm-"
)

// Dirs keeps one directory per snapshot, named by ID, under a snapshotter's
// root/snapshots. A directory is filled under a temporary name and renamed
// to its ID in the transaction that records the snapshot; on removal it is
// renamed aside in the transaction that deletes the record, and deleted
// after. So an ID directory exists when its record does, and whatever a
// crash leaves behind is recognisable by name, with one exception that
// Install deals with: a crash between the rename to an ID and the commit
// of the record leaves an ID directory that no record names.
type Dirs struct {
	dir string

	mu       sync.Mutex
	inflight map[string]bool // temporary directories in use
}

// NewDirs prepares root/snapshots. It must only be called while holding the
// snapshotter's metadata lock, since it deletes the temporary and removed
// directories a previous run left behind.
func NewDirs(ctx context.Context, root string) (*Dirs, error) {
	d := &Dirs{dir: filepath.Join(root, "snapshots"), inflight: map[string]bool{}}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create snapshot directory: %w", err)
	}
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, fmt.Errorf("read snapshot directory: %w", err)
	}
	for _, e := range entries {
		if name := e.Name(); strings.HasPrefix(name, tempPrefix) || strings.HasPrefix(name, removedPrefix) {
			removeAll(ctx, filepath.Join(d.dir, name))
		}
	}
	return d, nil
}

// Path returns the directory of snapshot id.
func (d *Dirs) Path(id string) string { return filepath.Join(d.dir, id) }

// TempDir is a directory being filled for a new snapshot.
type TempDir struct {
	Path      string
	d         *Dirs
	installed bool
	stale     string // what Install moved out of its way, for Close to remove
}

// Temp creates a temporary directory to fill and then install. Close it
// when done.
func (d *Dirs) Temp() (*TempDir, error) {
	path, err := os.MkdirTemp(d.dir, tempPrefix)
	if err != nil {
		return nil, fmt.Errorf("create temporary snapshot directory: %w", err)
	}
	d.mu.Lock()
	d.inflight[filepath.Base(path)] = true
	d.mu.Unlock()
	return &TempDir{Path: path, d: d}, nil
}

// Install renames the directory to that of snapshot id. Call it in the
// transaction that records id, with id freshly allocated by that
// transaction, and if the transaction fails, call the returned undo.
//
// Something may already be at the ID's path: a crash (or a failed undo)
// between an earlier install and the commit of its record leaves the
// directory, while the record's ID allocation is lost with the
// transaction, so the next transaction allocates the same ID again. Left
// there, it would fail every later create with "file exists", across
// restarts, until something removed it.
//
// It is safe to remove here. IDs come from the records' sequence, which
// only grows with a commit, and this transaction has just allocated id, so
// no committed record names it; bolt lets no other write transaction run
// meanwhile, and directories being filled are named new-*, not by ID. So
// what is at the path was installed by a transaction that never
// committed, and nothing refers to it. It is first renamed aside to an
// rm-* name, atomically, and removed by Close once the transaction is
// over, so that a large one does not hold the transaction up. A crash
// anywhere in this leaves either that same orphan, for the next create to
// move again, or rm-* and new-* names, which NewDirs removes.
//
// The alternatives fare worse. A start-up sweep of ID directories that no
// record names would be as safe, nothing running then, but costs a scan
// of every record at each start and does not help a running daemon whose
// undo failed. Never reusing an ID would need the sequence committed, and
// synced, before the directory is installed: a second commit per create.
func (t *TempDir) Install(id string) (undo func(), err error) {
	path := t.d.Path(id)
	if _, err := os.Lstat(path); err == nil {
		stale := filepath.Join(t.d.dir, fmt.Sprintf("%sorphan-%s-%d", removedPrefix, id, time.Now().UnixNano()))
		if err := os.Rename(path, stale); err != nil {
			return nil, fmt.Errorf("install snapshot directory %s: move aside what a crash left there: %w", id, err)
		}
		log.L.WithField("path", path).Warn("moved aside a snapshot directory that no record names")
		t.stale = stale
	}
	if err := os.Rename(t.Path, path); err != nil {
		return nil, fmt.Errorf("install snapshot directory %s: %w", id, err)
	}
	t.installed = true
	return func() {
		if err := os.Rename(path, t.Path); err != nil {
			removeAll(context.Background(), path)
			return
		}
		t.installed = false
	}, nil
}

// Close removes the directory unless it was installed, and what Install
// moved out of its way.
func (t *TempDir) Close() {
	if !t.installed {
		removeAll(context.Background(), t.Path)
	}
	if t.stale != "" {
		removeAll(context.Background(), t.stale)
	}
	t.d.mu.Lock()
	delete(t.d.inflight, filepath.Base(t.Path))
	t.d.mu.Unlock()
}

// Detach renames the directory of id aside, in the transaction that
// deletes its record. If the transaction fails, call undo; if it commits,
// call remove. A snapshot without a directory (a view of a parent) is not
// an error.
func (d *Dirs) Detach(id string) (undo func() error, remove func(context.Context), err error) {
	path, aside := d.Path(id), filepath.Join(d.dir, removedPrefix+id)
	if err := os.Rename(path, aside); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return func() error { return nil }, func(context.Context) {}, nil
		}
		return nil, nil, fmt.Errorf("detach snapshot directory %s: %w", id, err)
	}
	undo = func() error {
		if err := os.Rename(aside, path); err != nil {
			return fmt.Errorf("restore snapshot directory %s: %w", id, err)
		}
		return nil
	}
	return undo, func(ctx context.Context) { removeAll(ctx, aside) }, nil
}

// Orphans lists the directories that belong to no snapshot in ids (keys by
// ID) and are not in use. Call it in a writable transaction, so that no
// directory is being installed meanwhile.
func (d *Dirs) Orphans(ids map[string]string) ([]string, error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, fmt.Errorf("read snapshot directory: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var orphans []string
	for _, e := range entries {
		name := e.Name()
		if _, ok := ids[name]; ok || d.inflight[name] {
			continue
		}
		orphans = append(orphans, filepath.Join(d.dir, name))
	}
	return orphans, nil
}

// RemoveAll removes paths, logging what it cannot: the records are gone
// already, and Cleanup retries.
func RemoveAll(ctx context.Context, paths ...string) {
	for _, p := range paths {
		removeAll(ctx, p)
	}
}

func removeAll(ctx context.Context, path string) {
	if err := os.RemoveAll(path); err != nil {
		log.G(ctx).WithError(err).WithField("path", path).Warn("remove snapshot directory")
	}
}
