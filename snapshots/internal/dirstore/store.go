package dirstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/snapshots/storage"
)

// Store is a snapshotter's records and directories: root/metadata.db and
// root/snapshots. It implements the snapshots.Snapshotter methods that do
// not depend on how a snapshot's files are laid out, and Cleanup.
type Store struct {
	MS   *storage.MetaStore
	Dirs *Dirs
}

// Open opens the store under root, creating it if need be.
func Open(ctx context.Context, root string) (*Store, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("create snapshotter root: %w", err)
	}
	ms, err := storage.NewMetaStore(filepath.Join(root, "metadata.db"))
	if err != nil {
		return nil, err
	}
	dirs, err := NewDirs(ctx, root)
	if err != nil {
		ms.Close()
		return nil, err
	}
	return &Store{MS: ms, Dirs: dirs}, nil
}

func (s *Store) Stat(ctx context.Context, key string) (info snapshots.Info, err error) {
	err = s.MS.WithTransaction(ctx, false, func(ctx context.Context) error {
		_, info, _, err = storage.GetInfo(ctx, key)
		return err
	})
	return info, err
}

func (s *Store) Update(ctx context.Context, info snapshots.Info, fieldpaths ...string) (updated snapshots.Info, err error) {
	err = s.MS.WithTransaction(ctx, true, func(ctx context.Context) error {
		updated, err = storage.UpdateInfo(ctx, info, fieldpaths...)
		return err
	})
	return updated, err
}

// UsageIn returns the recorded usage of a committed snapshot or view, or
// measures the directory dir(id) of an active one, outside the transaction
// since that may take a while.
func (s *Store) UsageIn(ctx context.Context, key string, dir func(id string) string) (snapshots.Usage, error) {
	var (
		id    string
		info  snapshots.Info
		usage snapshots.Usage
	)
	err := s.MS.WithTransaction(ctx, false, func(ctx context.Context) (err error) {
		id, info, usage, err = storage.GetInfo(ctx, key)
		return err
	})
	if err != nil || info.Kind != snapshots.KindActive {
		return usage, err
	}
	return DiskUsage(ctx, dir(id))
}

// Snapshot returns the ID and parents of the active snapshot or view key.
func (s *Store) Snapshot(ctx context.Context, key string) (sn storage.Snapshot, err error) {
	err = s.MS.WithTransaction(ctx, false, func(ctx context.Context) error {
		sn, err = storage.GetSnapshot(ctx, key)
		return err
	})
	return sn, err
}

// CheckCreate refuses early, before a snapshotter does any costly work,
// what CreateSnapshot would refuse, and returns the ID of parent.
func (s *Store) CheckCreate(ctx context.Context, key, parent string) (parentID string, err error) {
	if key == "" {
		return "", fmt.Errorf("snapshot key must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	err = s.MS.WithTransaction(ctx, false, func(ctx context.Context) error {
		if _, _, _, err := storage.GetInfo(ctx, key); err == nil {
			return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
		} else if !errdefs.IsNotFound(err) {
			return err
		}
		if parent == "" {
			return nil
		}
		id, info, _, err := storage.GetInfo(ctx, parent)
		if err != nil {
			return fmt.Errorf("parent of snapshot %q: %w", key, err)
		}
		if info.Kind != snapshots.KindCommitted {
			return fmt.Errorf("parent %q of snapshot %q is %s, not committed: %w",
				parent, key, info.Kind, errdefs.ErrFailedPrecondition)
		}
		parentID = id
		return nil
	})
	return parentID, err
}

// Create records a new active snapshot or view and installs tmp, if not
// nil, as its directory. parentID is the parent's ID as CheckCreate saw
// it, against which tmp was filled.
func (s *Store) Create(ctx context.Context, kind snapshots.Kind, key, parent, parentID string, tmp *TempDir, opts []snapshots.Opt) (storage.Snapshot, error) {
	var (
		sn   storage.Snapshot
		undo func()
	)
	err := s.MS.WithTransaction(ctx, true, func(ctx context.Context) (err error) {
		if sn, err = storage.CreateSnapshot(ctx, kind, key, parent, opts...); err != nil {
			return err
		}
		if len(sn.ParentIDs) > 0 && sn.ParentIDs[0] != parentID {
			return fmt.Errorf("create snapshot %q: parent %q was replaced meanwhile: %w", key, parent, errdefs.ErrUnavailable)
		}
		if tmp != nil {
			undo, err = tmp.Install(sn.ID)
		}
		return err
	})
	if err != nil {
		if undo != nil {
			undo()
		}
		return storage.Snapshot{}, err
	}
	return sn, nil
}

// CommitWith commits the active snapshot key as name, recording the usage
// that measure returns for its ID. The measuring happens before the write
// transaction, so that it does not hold up other snapshot operations.
func (s *Store) CommitWith(ctx context.Context, name, key string, measure func(id string) (snapshots.Usage, error), opts []snapshots.Opt) error {
	var id string
	err := s.MS.WithTransaction(ctx, false, func(ctx context.Context) error {
		var (
			info snapshots.Info
			err  error
		)
		id, info, _, err = storage.GetInfo(ctx, key)
		if err != nil {
			return fmt.Errorf("commit snapshot %q: %w", key, err)
		}
		if info.Kind != snapshots.KindActive {
			return fmt.Errorf("commit snapshot %q: it is %s, not active: %w", key, info.Kind, errdefs.ErrFailedPrecondition)
		}
		return nil
	})
	if err != nil {
		return err
	}
	usage, err := measure(id)
	if err != nil {
		return fmt.Errorf("commit snapshot %q: %w", key, err)
	}
	return s.MS.WithTransaction(ctx, true, func(ctx context.Context) error {
		cid, err := storage.CommitActive(ctx, key, name, usage, opts...)
		if err != nil {
			return err
		}
		if cid != id {
			return fmt.Errorf("commit snapshot %q: it was replaced meanwhile: %w", key, errdefs.ErrUnavailable)
		}
		return nil
	})
}

// Remove deletes snapshot key: its record, then its directory.
func (s *Store) Remove(ctx context.Context, key string) error {
	var (
		undo   func() error
		remove func(context.Context)
	)
	err := s.MS.WithTransaction(ctx, true, func(ctx context.Context) error {
		id, _, err := storage.Remove(ctx, key)
		if err != nil {
			return err
		}
		undo, remove, err = s.Dirs.Detach(id)
		return err
	})
	if err != nil {
		if undo != nil {
			if uerr := undo(); uerr != nil {
				// The directory stays aside, to be deleted at restart; the
				// record the failed transaction kept now has no files.
				err = fmt.Errorf("%w (and %v)", err, uerr)
			}
		}
		return err
	}
	remove(ctx)
	return nil
}

// Walk calls fn for the snapshots that match filters. The infos are read
// first and fn called after the transaction, so that fn may call back into
// the snapshotter.
func (s *Store) Walk(ctx context.Context, fn snapshots.WalkFunc, filters ...string) error {
	var infos []snapshots.Info
	err := s.MS.WithTransaction(ctx, false, func(ctx context.Context) error {
		return storage.WalkInfo(ctx, func(_ context.Context, info snapshots.Info) error {
			infos = append(infos, info)
			return nil
		}, filters...)
	})
	if err != nil {
		return err
	}
	for _, info := range infos {
		if err := fn(ctx, info); err != nil {
			return err
		}
	}
	return nil
}

// Cleanup removes directories that belong to no snapshot.
func (s *Store) Cleanup(ctx context.Context) error {
	// Writable, so that no snapshot is created or removed while listing;
	// rolled back, since it writes nothing and a commit would cost a sync.
	tctx, tx, err := s.MS.TransactionContext(ctx, true)
	if err != nil {
		return fmt.Errorf("clean up snapshots: %w", err)
	}
	ids, err := storage.IDMap(tctx)
	var orphans []string
	if err == nil {
		orphans, err = s.Dirs.Orphans(ids)
	}
	if rerr := tx.Rollback(); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("clean up snapshots: %w", err)
	}
	RemoveAll(ctx, orphans...)
	return nil
}

// Close closes the records. The directories need no closing.
func (s *Store) Close() error { return s.MS.Close() }
