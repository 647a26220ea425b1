package metadata

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/filters"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/snapshots"
)

// snapshotter is the per-namespace view of a backing snapshotter. Each
// namespace names its snapshots as it likes; the backing snapshotter knows
// them by keys unique across namespaces, "<ns>/<seq>/<key>" as containerd
// makes them, which the namespace's records map to.
//
// A namespace's records hold the parent, children, labels and times; the
// backing snapshotter holds the data, the kind and the labels under
// snapshots.InheritedLabelPrefix, which it may act on. Removing a record
// leaves the backing snapshot to the next collection.
type snapshotter struct {
	db      *DB
	name    string
	backing snapshots.Snapshotter

	// l orders the collection's cleanup of the backing snapshotter
	// against the operations that make backing snapshots and the records
	// naming them: those hold it shared, the cleanup exclusively, so that
	// a snapshot made but not yet recorded is never taken for garbage.
	l sync.RWMutex

	// seqs hands out the sequence numbers of backing keys, by namespace.
	// A create takes its number before making the backing snapshot and
	// stores it with the record afterwards, so that it needs no write
	// transaction, and no commit's syncs, before the backing snapshot.
	seqMu sync.Mutex
	seqs  map[string]uint64
}

var (
	_ snapshots.Snapshotter = (*snapshotter)(nil)
	_ snapshots.Cleaner     = (*snapshotter)(nil)
)

func newSnapshotter(db *DB, name string, backing snapshots.Snapshotter) *snapshotter {
	return &snapshotter{db: db, name: name, backing: backing, seqs: map[string]uint64{}}
}

// backingKey makes the backing key of key, unique thanks to seq, a
// sequence number of the namespace's snapshotter bucket.
func backingKey(ns string, seq uint64, key string) string {
	return fmt.Sprintf("%s/%d/%s", ns, seq, key)
}

// nextSeq returns a sequence number for a backing key in ns above every
// one handed out so far and above persisted, the namespace's bucket's
// sequence. Whoever records the key stores the number as the bucket's
// sequence, so that numbers stay unique across restarts too.
func (s *snapshotter) nextSeq(ns string, persisted uint64) uint64 {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	seq := max(s.seqs[ns], persisted) + 1
	s.seqs[ns] = seq
	return seq
}

// recordSeq stores seq as bkt's sequence if it is higher.
func recordSeq(bkt *bolt.Bucket, seq uint64) error {
	if seq <= bkt.Sequence() {
		return nil
	}
	return bkt.SetSequence(seq)
}

// maxSeqTries bounds how often a create draws a new backing key when the
// backing snapshotter already has one: a snapshot made just before a crash
// whose record was never written, and whose number was never stored.
const maxSeqTries = 8

// readSnapshotRecord reads the namespace's record of key: its info, less the kind,
// and its backing key.
func readSnapshotRecord(bkt *bolt.Bucket, key string) (snapshots.Info, string, error) {
	info := snapshots.Info{Name: key, Parent: string(bkt.Get(bucketKeyParent))}
	if err := readTimestamps(bkt, &info.Created, &info.Updated); err != nil {
		return snapshots.Info{}, "", fmt.Errorf("snapshot %q: %w", key, err)
	}
	labels, err := readMap(bkt, bucketKeyObjectLabels)
	if err != nil {
		return snapshots.Info{}, "", fmt.Errorf("snapshot %q: %w", key, err)
	}
	info.Labels = labels
	return info, string(bkt.Get(bucketKeyName)), nil
}

// mergeInfo completes the namespace's info with what only the backing
// snapshotter knows: the kind, and inherited labels the namespace did not
// set.
func mergeInfo(backing, local snapshots.Info) snapshots.Info {
	local.Kind = backing.Kind
	if len(backing.Labels) > 0 {
		labels := maps.Clone(backing.Labels)
		maps.Copy(labels, local.Labels)
		local.Labels = labels
	}
	return local
}

func notFound(key string) error {
	return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
}

// resolve returns the backing key of the namespace's snapshot key.
func (s *snapshotter) resolve(ctx context.Context, key string) (string, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return "", err
	}
	var bkey string
	err = s.db.View(func(tx *bolt.Tx) error {
		if bkt := getSnapshotterBucket(tx, ns, s.name); bkt != nil && key != "" {
			if sbkt := bkt.Bucket([]byte(key)); sbkt != nil {
				bkey = string(sbkt.Get(bucketKeyName))
			}
		}
		if bkey == "" {
			return notFound(key)
		}
		return nil
	})
	return bkey, err
}

func (s *snapshotter) Stat(ctx context.Context, key string) (snapshots.Info, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return snapshots.Info{}, err
	}
	var (
		local snapshots.Info
		bkey  string
	)
	err = s.db.View(func(tx *bolt.Tx) error {
		sbkt := getSnapshotBucket(tx, ns, s.name, key)
		if sbkt == nil {
			return notFound(key)
		}
		var rerr error
		local, bkey, rerr = readSnapshotRecord(sbkt, key)
		return rerr
	})
	if err != nil {
		return snapshots.Info{}, err
	}
	binfo, err := s.backing.Stat(ctx, bkey)
	if err != nil {
		return snapshots.Info{}, fmt.Errorf("snapshot %q: %w", key, err)
	}
	return mergeInfo(binfo, local), nil
}

// Update changes the namespace's labels, and passes changes to inherited
// labels on to the backing snapshotter in the same transaction, so that a
// refusal there leaves both unchanged.
func (s *snapshotter) Update(ctx context.Context, info snapshots.Info, fieldpaths ...string) (snapshots.Info, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return snapshots.Info{}, err
	}
	if info.Name == "" {
		return snapshots.Info{}, fmt.Errorf("snapshot name must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	if len(fieldpaths) == 0 {
		fieldpaths = []string{"labels"}
	}

	s.l.RLock()
	defer s.l.RUnlock()

	var updated snapshots.Info
	err = s.db.updateAlone(func(tx *bolt.Tx) error {
		sbkt := getSnapshotBucket(tx, ns, s.name, info.Name)
		if sbkt == nil {
			return notFound(info.Name)
		}
		local, bkey, err := readSnapshotRecord(sbkt, info.Name)
		if err != nil {
			return err
		}
		var inherited []string
		for _, path := range fieldpaths {
			if !applyMapPath(&local.Labels, info.Labels, path, "labels") {
				return fmt.Errorf("snapshot %q: cannot update field %q: %w", info.Name, path, errdefs.ErrInvalidArgument)
			}
			if k, ok := strings.CutPrefix(path, "labels."); path == "labels" || ok && isInheritedLabel(k) {
				inherited = append(inherited, path)
			}
		}
		if err := validateLabels(local.Labels); err != nil {
			return fmt.Errorf("snapshot %q: %w", info.Name, err)
		}
		local.Labels = withoutEmpty(local.Labels)
		local.Updated = time.Now().UTC()
		if err := writeTime(sbkt, bucketKeyUpdatedAt, local.Updated); err != nil {
			return fmt.Errorf("snapshot %q: %w", info.Name, err)
		}
		if err := writeMap(sbkt, bucketKeyObjectLabels, local.Labels); err != nil {
			return fmt.Errorf("snapshot %q: %w", info.Name, err)
		}

		var binfo snapshots.Info
		if len(inherited) > 0 {
			binfo, err = s.backing.Update(ctx, snapshots.Info{
				Name:   bkey,
				Labels: snapshots.FilterInheritedLabels(local.Labels),
			}, inherited...)
		} else {
			binfo, err = s.backing.Stat(ctx, bkey)
		}
		if err != nil {
			return fmt.Errorf("snapshot %q: %w", info.Name, err)
		}
		updated = mergeInfo(binfo, local)
		return nil
	})
	if err != nil {
		return snapshots.Info{}, err
	}
	return updated, nil
}

func isInheritedLabel(k string) bool {
	return k == snapshots.LabelSnapshotRef || strings.HasPrefix(k, snapshots.InheritedLabelPrefix)
}

func (s *snapshotter) Usage(ctx context.Context, key string) (snapshots.Usage, error) {
	bkey, err := s.resolve(ctx, key)
	if err != nil {
		return snapshots.Usage{}, err
	}
	u, err := s.backing.Usage(ctx, bkey)
	if err != nil {
		return snapshots.Usage{}, fmt.Errorf("snapshot %q: %w", key, err)
	}
	return u, nil
}

func (s *snapshotter) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	bkey, err := s.resolve(ctx, key)
	if err != nil {
		return nil, err
	}
	m, err := s.backing.Mounts(ctx, bkey)
	if err != nil {
		return nil, fmt.Errorf("snapshot %q: %w", key, err)
	}
	return m, nil
}

func (s *snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return s.create(ctx, snapshots.KindActive, key, parent, opts)
}

func (s *snapshotter) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return s.create(ctx, snapshots.KindView, key, parent, opts)
}

// create makes an active snapshot or view in three steps: a transaction
// that checks the names and draws the backing key, the backing snapshot,
// made outside any transaction since copying a parent can take long, and
// a transaction that records it. If the record cannot be written the
// backing snapshot is removed again.
func (s *snapshotter) create(ctx context.Context, kind snapshots.Kind, key, parent string, opts []snapshots.Opt) ([]mount.Mount, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	if key == "" {
		return nil, fmt.Errorf("snapshot key must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	var base snapshots.Info
	for _, opt := range opts {
		if err := opt(&base); err != nil {
			return nil, err
		}
	}
	if err := validateLabels(base.Labels); err != nil {
		return nil, fmt.Errorf("snapshot %q: %w", key, err)
	}

	s.l.RLock()
	defer s.l.RUnlock()

	// Checked here and again when recording: another create may come
	// between, and the record's transaction decides.
	var (
		bkey, bparent string
		persisted     uint64
	)
	err = s.db.View(func(tx *bolt.Tx) error {
		if err := checkLease(ctx, tx, ns); err != nil {
			return err
		}
		var pbkt *bolt.Bucket
		if bkt := getSnapshotterBucket(tx, ns, s.name); bkt != nil {
			if bkt.Bucket([]byte(key)) != nil {
				return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
			}
			if parent != "" {
				pbkt = bkt.Bucket([]byte(parent))
			}
			persisted = bkt.Sequence()
		}
		if parent != "" {
			if pbkt == nil {
				return fmt.Errorf("parent snapshot %q: %w", parent, errdefs.ErrNotFound)
			}
			bparent = string(pbkt.Get(bucketKeyName))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	bopts := []snapshots.Opt{snapshots.WithLabels(snapshots.FilterInheritedLabels(base.Labels))}
	var (
		m   []mount.Mount
		seq uint64
	)
	for try := 0; ; try++ {
		seq = s.nextSeq(ns, persisted)
		bkey = backingKey(ns, seq, key)
		if kind == snapshots.KindView {
			m, err = s.backing.View(ctx, bkey, bparent, bopts...)
		} else {
			m, err = s.backing.Prepare(ctx, bkey, bparent, bopts...)
		}
		if !errdefs.IsAlreadyExists(err) || try+1 == maxSeqTries {
			break
		}
	}
	if err != nil {
		if parent != "" {
			return nil, fmt.Errorf("snapshot %q on parent %q: %w", key, parent, err)
		}
		return nil, fmt.Errorf("snapshot %q: %w", key, err)
	}

	err = s.db.updateAlone(func(tx *bolt.Tx) error {
		bkt, err := createBucketIfNotExists(tx, namespacePath(ns, bucketKeyObjectSnapshots, []byte(s.name))...)
		if err != nil {
			return err
		}
		sbkt, err := bkt.CreateBucket([]byte(key))
		if errors.Is(err, bolterrors.ErrBucketExists) {
			return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
		}
		if err != nil {
			return fmt.Errorf("create snapshot %q: %w", key, err)
		}
		if parent != "" {
			// The parent may have been removed, and even made anew,
			// while the backing snapshot was made.
			pbkt := bkt.Bucket([]byte(parent))
			if pbkt == nil || string(pbkt.Get(bucketKeyName)) != bparent {
				return fmt.Errorf("parent snapshot %q: removed meanwhile: %w", parent, errdefs.ErrNotFound)
			}
			if err := linkChild(pbkt, key); err != nil {
				return fmt.Errorf("snapshot %q: %w", key, err)
			}
			if err := sbkt.Put(bucketKeyParent, []byte(parent)); err != nil {
				return fmt.Errorf("snapshot %q: write parent: %w", key, err)
			}
		}
		if err := recordSeq(bkt, seq); err != nil {
			return fmt.Errorf("snapshot %q: %w", key, err)
		}
		now := time.Now().UTC()
		if err := writeSnapshotRecord(sbkt, key, bkey, now, base.Labels); err != nil {
			return err
		}
		return addSnapshotLease(ctx, tx, ns, s.name, key)
	})
	if err != nil {
		if rerr := s.backing.Remove(ctx, bkey); rerr != nil {
			// Nothing names it; the next cleanup will find it.
			log.G(ctx).WithError(rerr).WithField("snapshotter", s.name).WithField("key", bkey).
				Warn("failed to remove unrecorded snapshot")
		}
		return nil, err
	}
	return m, nil
}

// writeSnapshotRecord writes a new record's backing key, times and labels.
func writeSnapshotRecord(sbkt *bolt.Bucket, key, bkey string, now time.Time, labels map[string]string) error {
	if err := sbkt.Put(bucketKeyName, []byte(bkey)); err != nil {
		return fmt.Errorf("snapshot %q: write name: %w", key, err)
	}
	if err := writeTimestamps(sbkt, now, now); err != nil {
		return fmt.Errorf("snapshot %q: %w", key, err)
	}
	if err := writeMap(sbkt, bucketKeyObjectLabels, labels); err != nil {
		return fmt.Errorf("snapshot %q: %w", key, err)
	}
	return nil
}

func linkChild(pbkt *bolt.Bucket, child string) error {
	cbkt, err := pbkt.CreateBucketIfNotExists(bucketKeyChildren)
	if err != nil {
		return fmt.Errorf("link child: %w", err)
	}
	if err := cbkt.Put([]byte(child), []byte{}); err != nil {
		return fmt.Errorf("link child: %w", err)
	}
	return nil
}

func unlinkChild(pbkt *bolt.Bucket, child string) error {
	cbkt := pbkt.Bucket(bucketKeyChildren)
	if cbkt == nil {
		return nil
	}
	if err := cbkt.Delete([]byte(child)); err != nil {
		return fmt.Errorf("unlink child: %w", err)
	}
	return nil
}

// Commit records name in place of key and commits the backing snapshot
// last in the same transaction: the backing commit is the step that
// cannot be undone, so everything that can fail comes before it.
func (s *snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	if name == "" || key == "" {
		return fmt.Errorf("commit needs a name and a key: %w", errdefs.ErrInvalidArgument)
	}
	var base snapshots.Info
	for _, opt := range opts {
		if err := opt(&base); err != nil {
			return err
		}
	}
	if err := validateLabels(base.Labels); err != nil {
		return fmt.Errorf("snapshot %q: %w", name, err)
	}

	s.l.RLock()
	defer s.l.RUnlock()

	return s.db.updateAlone(func(tx *bolt.Tx) error {
		bkt := getSnapshotterBucket(tx, ns, s.name)
		if bkt == nil || bkt.Bucket([]byte(key)) == nil {
			return notFound(key)
		}
		obkt := bkt.Bucket([]byte(key))
		nbkt, err := bkt.CreateBucket([]byte(name))
		if errors.Is(err, bolterrors.ErrBucketExists) {
			return fmt.Errorf("snapshot %q: %w", name, errdefs.ErrAlreadyExists)
		}
		if err != nil {
			return fmt.Errorf("create snapshot %q: %w", name, err)
		}
		bkey := string(obkt.Get(bucketKeyName))
		seq := s.nextSeq(ns, bkt.Sequence())
		if err := recordSeq(bkt, seq); err != nil {
			return fmt.Errorf("snapshot %q: %w", name, err)
		}
		nameKey := backingKey(ns, seq, name)

		// A parent in opts rebases a snapshot prepared without one (see
		// storage.CommitActive): it is linked as any parent, and the
		// backing snapshotter is told the parent's backing key.
		var backingOpts []snapshots.Opt
		parent := obkt.Get(bucketKeyParent)
		if base.Parent != "" && base.Parent != string(parent) {
			if len(parent) > 0 {
				return fmt.Errorf("commit snapshot %q: it has parent %q, cannot rebase it onto %q: %w",
					key, parent, base.Parent, errdefs.ErrInvalidArgument)
			}
			pbkt := bkt.Bucket([]byte(base.Parent))
			if pbkt == nil {
				return fmt.Errorf("commit snapshot %q onto parent %q: %w", key, base.Parent, errdefs.ErrNotFound)
			}
			parent = []byte(base.Parent)
			pkey := string(pbkt.Get(bucketKeyName))
			backingOpts = append(backingOpts, func(info *snapshots.Info) error {
				info.Parent = pkey
				return nil
			})
		}
		if len(parent) > 0 {
			pbkt := bkt.Bucket(parent)
			if pbkt == nil {
				return fmt.Errorf("parent snapshot %q: %w", parent, errdefs.ErrNotFound)
			}
			if err := unlinkChild(pbkt, key); err != nil {
				return fmt.Errorf("snapshot %q: %w", key, err)
			}
			if err := linkChild(pbkt, name); err != nil {
				return fmt.Errorf("snapshot %q: %w", name, err)
			}
			if err := nbkt.Put(bucketKeyParent, parent); err != nil {
				return fmt.Errorf("snapshot %q: write parent: %w", name, err)
			}
		}
		if err := writeSnapshotRecord(nbkt, name, nameKey, time.Now().UTC(), base.Labels); err != nil {
			return err
		}
		if err := bkt.DeleteBucket([]byte(key)); err != nil {
			return fmt.Errorf("delete snapshot %q: %w", key, err)
		}
		if err := removeSnapshotLease(ctx, tx, ns, s.name, key); err != nil {
			return err
		}
		if err := addSnapshotLease(ctx, tx, ns, s.name, name); err != nil {
			return err
		}

		backingOpts = append(backingOpts, snapshots.WithLabels(snapshots.FilterInheritedLabels(base.Labels)))
		if err := s.backing.Commit(ctx, nameKey, bkey, backingOpts...); err != nil {
			return fmt.Errorf("commit snapshot %q as %q: %w", key, name, err)
		}
		return nil
	})
}

// Remove removes the namespace's record of key. The backing snapshot goes
// at the next collection, once no record names it.
func (s *snapshotter) Remove(ctx context.Context, key string) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}

	s.l.RLock()
	defer s.l.RUnlock()

	return s.db.updateAlone(func(tx *bolt.Tx) error {
		bkt := getSnapshotterBucket(tx, ns, s.name)
		sbkt := getSnapshotBucket(tx, ns, s.name, key)
		if sbkt == nil {
			return notFound(key)
		}
		if !isBucketEmpty(sbkt.Bucket(bucketKeyChildren)) {
			return fmt.Errorf("cannot remove snapshot %q: it has children: %w", key, errdefs.ErrFailedPrecondition)
		}
		if parent := sbkt.Get(bucketKeyParent); len(parent) > 0 {
			if pbkt := bkt.Bucket(parent); pbkt != nil {
				if err := unlinkChild(pbkt, key); err != nil {
					return fmt.Errorf("snapshot %q: %w", key, err)
				}
			}
		}
		if err := bkt.DeleteBucket([]byte(key)); err != nil {
			return fmt.Errorf("delete snapshot %q: %w", key, err)
		}
		if err := removeSnapshotLease(ctx, tx, ns, s.name, key); err != nil {
			return err
		}
		s.db.markSnapshotterDirty(s.name)
		return nil
	})
}

// Walk calls fn for the namespace's snapshots that match filters, in key
// order. The records are read first and fn called outside the
// transaction, so that fn may call back into the snapshotter. A record
// whose backing snapshot is gone is skipped: it is being removed.
func (s *snapshotter) Walk(ctx context.Context, fn snapshots.WalkFunc, fs ...string) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return err
	}

	type record struct {
		info snapshots.Info
		bkey string
	}
	var records []record
	err = s.db.View(func(tx *bolt.Tx) error {
		bkt := getSnapshotterBucket(tx, ns, s.name)
		if bkt == nil {
			return nil
		}
		return bkt.ForEachBucket(func(k []byte) error {
			info, bkey, err := readSnapshotRecord(bkt.Bucket(k), string(k))
			if err != nil {
				return err
			}
			records = append(records, record{info, bkey})
			return nil
		})
	})
	if err != nil {
		return err
	}

	for _, r := range records {
		binfo, err := s.backing.Stat(ctx, r.bkey)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("snapshot %q: %w", r.info.Name, err)
		}
		info := mergeInfo(binfo, r.info)
		if !filter.Match(adaptSnapshot(info)) {
			continue
		}
		if err := fn(ctx, info); err != nil {
			return err
		}
	}
	return nil
}

// Cleanup removes the backing snapshots that no namespace's record names
// and has the backing snapshotter reclaim what removals left, as a
// collection does after sweeping. It is NotImplemented if the backing
// snapshotter is no snapshots.Cleaner.
func (s *snapshotter) Cleanup(ctx context.Context) error {
	if _, ok := s.backing.(snapshots.Cleaner); !ok {
		return fmt.Errorf("%s snapshotter cannot clean up: %w", s.name, errdefs.ErrNotImplemented)
	}
	return s.cleanup(ctx)
}

// Close does nothing: the backing snapshotter belongs to its plugin, which
// closes it, and the view stays usable as long as the DB.
func (s *snapshotter) Close() error { return nil }

// adaptSnapshot exposes info to filters: kind, name, parent, labels.<key>.
func adaptSnapshot(info snapshots.Info) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 0 {
			return "", false
		}
		switch fieldpath[0] {
		case "kind":
			if info.Kind == snapshots.KindUnknown {
				return "", false
			}
			return strings.ToLower(info.Kind.String()), true
		case "name":
			return info.Name, true
		case "parent":
			return info.Parent, true
		case "labels":
			return mapField(fieldpath[1:], info.Labels)
		}
		return "", false
	})
}

func getSnapshotBucket(tx *bolt.Tx, ns, snapshotter, key string) *bolt.Bucket {
	if key == "" {
		return nil
	}
	return getBucket(tx, namespacePath(ns, bucketKeyObjectSnapshots, []byte(snapshotter), []byte(key))...)
}

// snapshotLeasePath is where a lease holds the snapshots of snapshotter,
// its resource type being "snapshots/<snapshotter>".
func snapshotLeasePath(snapshotter string) [][]byte {
	return [][]byte{bucketKeyObjectSnapshots, []byte(snapshotter)}
}

// addSnapshotLease adds the snapshot to the lease of ctx, if it has one.
func addSnapshotLease(ctx context.Context, tx *bolt.Tx, ns, snapshotter, key string) error {
	lid, ok := leaseFromContext(ctx)
	if !ok {
		return nil
	}
	bkt := getLeaseBucket(tx, ns, lid)
	if bkt == nil {
		return fmt.Errorf("lease %q: %w", lid, errdefs.ErrNotFound)
	}
	if err := putLeaseResource(bkt, snapshotLeasePath(snapshotter), key); err != nil {
		return fmt.Errorf("lease %q: %w", lid, err)
	}
	return nil
}

// removeSnapshotLease takes the snapshot out of the lease of ctx, if it
// has one and the lease holds it.
func removeSnapshotLease(ctx context.Context, tx *bolt.Tx, ns, snapshotter, key string) error {
	lid, ok := leaseFromContext(ctx)
	if !ok {
		return nil
	}
	bkt := getLeaseBucket(tx, ns, lid)
	if bkt == nil {
		return nil
	}
	if err := deleteLeaseResource(bkt, snapshotLeasePath(snapshotter), key); err != nil {
		return fmt.Errorf("lease %q: %w", lid, err)
	}
	return nil
}
