package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/filters"
	"github.com/llitfkitfk/containerd/snapshots"
)

// The layout is containerd's, so that either daemon reads the other's
// snapshotter database:
//
//	v1/snapshots/<key>/id          uvarint, names the snapshot's directory
//	v1/snapshots/<key>/kind        one byte, a snapshots.Kind
//	v1/snapshots/<key>/parent      the parent's name, absent if none
//	v1/snapshots/<key>/createdat   time.MarshalBinary
//	v1/snapshots/<key>/updatedat   time.MarshalBinary
//	v1/snapshots/<key>/labels/<k>  label values
//	v1/snapshots/<key>/inodes      varint, committed snapshots only
//	v1/snapshots/<key>/size        varint, committed snapshots only
//	v1/parents/<parent id>0<id>    the child's key: an index of children
var (
	bucketKeyStorageVersion = []byte("v1")
	bucketKeySnapshot       = []byte("snapshots")
	bucketKeyParents        = []byte("parents")

	bucketKeyID        = []byte("id")
	bucketKeyKind      = []byte("kind")
	bucketKeyParent    = []byte("parent")
	bucketKeyCreatedAt = []byte("createdat")
	bucketKeyUpdatedAt = []byte("updatedat")
	bucketKeyLabels    = []byte("labels")
	bucketKeyInodes    = []byte("inodes")
	bucketKeySize      = []byte("size")
)

// maxLabelSize bounds a label's key and value together, as the metadata
// store does.
const maxLabelSize = 4096

// Snapshot is what a snapshotter needs to assemble an active snapshot or
// view: its ID and its parents' IDs, nearest parent first.
type Snapshot struct {
	Kind      snapshots.Kind
	ID        string
	ParentIDs []string
}

// GetInfo returns the ID, info and recorded usage of the snapshot key. The
// usage is zero unless the snapshot is committed.
func GetInfo(ctx context.Context, key string) (string, snapshots.Info, snapshots.Usage, error) {
	bkt, _, err := buckets(ctx, false)
	if err != nil {
		return "", snapshots.Info{}, snapshots.Usage{}, err
	}
	sbkt := snapshotBucket(bkt, key)
	if sbkt == nil {
		return "", snapshots.Info{}, snapshots.Usage{}, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	info, err := readInfo(sbkt, key)
	if err != nil {
		return "", snapshots.Info{}, snapshots.Usage{}, err
	}
	return formatID(readID(sbkt)), info, readUsage(sbkt), nil
}

// UpdateInfo changes the labels of snapshot info.Name, as
// snapshots.Snapshotter.Update describes, and returns the new info.
func UpdateInfo(ctx context.Context, info snapshots.Info, fieldpaths ...string) (snapshots.Info, error) {
	bkt, _, err := buckets(ctx, false)
	if err != nil {
		return snapshots.Info{}, err
	}
	sbkt := snapshotBucket(bkt, info.Name)
	if sbkt == nil {
		return snapshots.Info{}, fmt.Errorf("snapshot %q: %w", info.Name, errdefs.ErrNotFound)
	}
	updated, err := readInfo(sbkt, info.Name)
	if err != nil {
		return snapshots.Info{}, err
	}
	if len(fieldpaths) == 0 {
		fieldpaths = []string{"labels"}
	}
	for _, path := range fieldpaths {
		if key, ok := strings.CutPrefix(path, "labels."); ok {
			if updated.Labels == nil {
				updated.Labels = map[string]string{}
			}
			// An absent value reads as "", which writeLabels drops.
			updated.Labels[key] = info.Labels[key]
			continue
		}
		if path != "labels" {
			return snapshots.Info{}, fmt.Errorf("cannot update field %q of snapshot %q: only labels are mutable: %w",
				path, info.Name, errdefs.ErrInvalidArgument)
		}
		updated.Labels = copyLabels(info.Labels)
	}
	updated.Updated = time.Now().UTC()
	if err := writeLabels(sbkt, updated.Labels); err != nil {
		return snapshots.Info{}, fmt.Errorf("update snapshot %q: %w", info.Name, err)
	}
	if err := writeTimestamps(sbkt, updated.Created, updated.Updated); err != nil {
		return snapshots.Info{}, fmt.Errorf("update snapshot %q: %w", info.Name, err)
	}
	if len(updated.Labels) == 0 {
		updated.Labels = nil
	}
	return updated, nil
}

// WalkInfo calls fn for each snapshot that matches one of filters, within
// the context's transaction. fn must not begin another transaction; a
// snapshotter that calls out to clients should collect the infos first.
func WalkInfo(ctx context.Context, fn snapshots.WalkFunc, fs ...string) error {
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return fmt.Errorf("snapshot filters: %w", err)
	}
	bkt, _, err := buckets(ctx, false)
	if err != nil || bkt == nil {
		return err
	}
	return bkt.ForEachBucket(func(k []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := readInfo(bkt.Bucket(k), string(k))
		if err != nil {
			return err
		}
		if !filter.Match(adaptInfo(info)) {
			return nil
		}
		return fn(ctx, info)
	})
}

// GetSnapshot returns the ID and parent chain of the active snapshot or
// view key, for assembling its mounts.
func GetSnapshot(ctx context.Context, key string) (Snapshot, error) {
	bkt, _, err := buckets(ctx, false)
	if err != nil {
		return Snapshot{}, err
	}
	sbkt := snapshotBucket(bkt, key)
	if sbkt == nil {
		return Snapshot{}, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	s := Snapshot{Kind: readKind(sbkt), ID: formatID(readID(sbkt))}
	if s.Kind != snapshots.KindActive && s.Kind != snapshots.KindView {
		return Snapshot{}, fmt.Errorf("snapshot %q is %s, not active or a view: %w", key, s.Kind, errdefs.ErrFailedPrecondition)
	}
	if parent := sbkt.Get(bucketKeyParent); len(parent) > 0 {
		if s.ParentIDs, err = parentIDs(bkt, string(parent)); err != nil {
			return Snapshot{}, fmt.Errorf("snapshot %q: %w", key, err)
		}
	}
	return s, nil
}

// CreateSnapshot records a new active snapshot or view key on top of the
// committed snapshot parent, allocating its ID. The context's transaction
// must be writable.
func CreateSnapshot(ctx context.Context, kind snapshots.Kind, key, parent string, opts ...snapshots.Opt) (Snapshot, error) {
	if kind != snapshots.KindActive && kind != snapshots.KindView {
		return Snapshot{}, fmt.Errorf("create snapshot %q of kind %s: only active snapshots and views can be created: %w",
			key, kind, errdefs.ErrInvalidArgument)
	}
	if err := validateKey(key); err != nil {
		return Snapshot{}, err
	}
	base, err := applyOpts(opts)
	if err != nil {
		return Snapshot{}, err
	}
	bkt, pbkt, err := buckets(ctx, true)
	if err != nil {
		return Snapshot{}, err
	}

	var (
		parentID uint64
		s        = Snapshot{Kind: kind}
	)
	if parent != "" {
		spbkt := snapshotBucket(bkt, parent)
		if spbkt == nil {
			return Snapshot{}, fmt.Errorf("parent %q of snapshot %q: %w", parent, key, errdefs.ErrNotFound)
		}
		if k := readKind(spbkt); k != snapshots.KindCommitted {
			return Snapshot{}, fmt.Errorf("parent %q of snapshot %q is %s, not committed: %w",
				parent, key, k, errdefs.ErrFailedPrecondition)
		}
		parentID = readID(spbkt)
		if s.ParentIDs, err = parentIDs(bkt, parent); err != nil {
			return Snapshot{}, fmt.Errorf("snapshot %q: %w", key, err)
		}
	}

	sbkt, err := bkt.CreateBucket([]byte(key))
	if errors.Is(err, bolterrors.ErrBucketExists) {
		return Snapshot{}, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
	} else if err != nil {
		return Snapshot{}, fmt.Errorf("create snapshot %q: %w", key, err)
	}
	id, err := bkt.NextSequence()
	if err != nil {
		return Snapshot{}, fmt.Errorf("allocate an ID for snapshot %q: %w", key, err)
	}
	now := time.Now().UTC()
	info := snapshots.Info{Kind: kind, Parent: parent, Labels: base.Labels, Created: now, Updated: now}
	if err := writeInfo(sbkt, id, info); err != nil {
		return Snapshot{}, fmt.Errorf("create snapshot %q: %w", key, err)
	}
	if parent != "" {
		if err := pbkt.Put(childKey(parentID, id), []byte(key)); err != nil {
			return Snapshot{}, fmt.Errorf("link snapshot %q to parent %q: %w", key, parent, err)
		}
	}
	s.ID = formatID(id)
	return s, nil
}

// Remove deletes the record of snapshot key and returns its ID and kind,
// for the caller to remove its files. A snapshot with children cannot be
// removed. The context's transaction must be writable.
func Remove(ctx context.Context, key string) (string, snapshots.Kind, error) {
	bkt, pbkt, err := buckets(ctx, false)
	if err != nil {
		return "", snapshots.KindUnknown, err
	}
	sbkt := snapshotBucket(bkt, key)
	if sbkt == nil {
		return "", snapshots.KindUnknown, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	id, kind := readID(sbkt), readKind(sbkt)
	if pbkt != nil {
		if hasChildren(pbkt, id) {
			return "", snapshots.KindUnknown, fmt.Errorf("remove snapshot %q: it has children: %w", key, errdefs.ErrFailedPrecondition)
		}
		if parent := sbkt.Get(bucketKeyParent); len(parent) > 0 {
			spbkt := snapshotBucket(bkt, string(parent))
			if spbkt == nil {
				return "", snapshots.KindUnknown, fmt.Errorf("parent %q of snapshot %q: %w", parent, key, errdefs.ErrNotFound)
			}
			if err := pbkt.Delete(childKey(readID(spbkt), id)); err != nil {
				return "", snapshots.KindUnknown, fmt.Errorf("unlink snapshot %q from parent %q: %w", key, parent, err)
			}
		}
	}
	if err := bkt.DeleteBucket([]byte(key)); err != nil {
		return "", snapshots.KindUnknown, fmt.Errorf("remove snapshot %q: %w", key, err)
	}
	return formatID(id), kind, nil
}

// CommitActive turns the active snapshot key into the committed snapshot
// name, keeping its ID and parent and recording usage. The labels are
// those of opts.
//
// A parent set by opts rebases a snapshot prepared without one onto it:
// a layer whose files do not depend on its parent's can then be unpacked
// before the parent is committed, and put in its chain on commit. Only
// snapshotters whose snapshots hold their own changes alone (overlay) may
// offer that to clients. A snapshot that has a parent keeps it; naming
// another is an error. The context's transaction must be writable.
func CommitActive(ctx context.Context, key, name string, usage snapshots.Usage, opts ...snapshots.Opt) (string, error) {
	if err := validateKey(name); err != nil {
		return "", err
	}
	base, err := applyOpts(opts)
	if err != nil {
		return "", err
	}
	bkt, pbkt, err := buckets(ctx, false)
	if err != nil {
		return "", err
	}
	sbkt := snapshotBucket(bkt, key)
	if sbkt == nil {
		return "", fmt.Errorf("commit snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	info, err := readInfo(sbkt, key)
	if err != nil {
		return "", err
	}
	if info.Kind != snapshots.KindActive {
		return "", fmt.Errorf("commit snapshot %q: it is %s, not active: %w", key, info.Kind, errdefs.ErrFailedPrecondition)
	}
	if base.Parent != "" && base.Parent != info.Parent {
		if info.Parent != "" {
			return "", fmt.Errorf("commit snapshot %q: it has parent %q, cannot rebase it onto %q: %w",
				key, info.Parent, base.Parent, errdefs.ErrInvalidArgument)
		}
		spbkt := snapshotBucket(bkt, base.Parent)
		if spbkt == nil {
			return "", fmt.Errorf("commit snapshot %q onto parent %q: %w", key, base.Parent, errdefs.ErrNotFound)
		}
		if k := readKind(spbkt); k != snapshots.KindCommitted {
			return "", fmt.Errorf("commit snapshot %q onto parent %q: it is %s, not committed: %w",
				key, base.Parent, k, errdefs.ErrFailedPrecondition)
		}
		info.Parent = base.Parent // linked to it below, like any parent
	}
	id := readID(sbkt)

	dbkt, err := bkt.CreateBucket([]byte(name))
	if errors.Is(err, bolterrors.ErrBucketExists) {
		return "", fmt.Errorf("commit snapshot %q as %q: %w", key, name, errdefs.ErrAlreadyExists)
	} else if err != nil {
		return "", fmt.Errorf("commit snapshot %q as %q: %w", key, name, err)
	}
	now := time.Now().UTC()
	info.Kind = snapshots.KindCommitted
	info.Labels = base.Labels
	info.Created, info.Updated = now, now
	if err := writeInfo(dbkt, id, info); err != nil {
		return "", fmt.Errorf("commit snapshot %q as %q: %w", key, name, err)
	}
	if err := writeUsage(dbkt, usage); err != nil {
		return "", fmt.Errorf("commit snapshot %q as %q: %w", key, name, err)
	}
	if err := bkt.DeleteBucket([]byte(key)); err != nil {
		return "", fmt.Errorf("commit snapshot %q: remove active record: %w", key, err)
	}
	if info.Parent != "" {
		spbkt := snapshotBucket(bkt, info.Parent)
		if spbkt == nil {
			return "", fmt.Errorf("parent %q of snapshot %q: %w", info.Parent, key, errdefs.ErrNotFound)
		}
		// The child index holds the key; point it at the new name.
		if err := pbkt.Put(childKey(readID(spbkt), id), []byte(name)); err != nil {
			return "", fmt.Errorf("relink snapshot %q to parent %q: %w", name, info.Parent, err)
		}
	}
	return formatID(id), nil
}

// IDMap returns the key of every snapshot by ID, for finding directories
// that no record owns.
func IDMap(ctx context.Context) (map[string]string, error) {
	bkt, _, err := buckets(ctx, false)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	if bkt == nil {
		return m, nil
	}
	err = bkt.ForEachBucket(func(k []byte) error {
		m[formatID(readID(bkt.Bucket(k)))] = string(k)
		return nil
	})
	return m, err
}

// buckets returns the snapshots and parents buckets, creating them when
// create is set. Without create they are nil in a new database.
func buckets(ctx context.Context, create bool) (bkt, pbkt *bolt.Bucket, err error) {
	tx, err := txFrom(ctx)
	if err != nil {
		return nil, nil, err
	}
	if !create {
		if vbkt := tx.Bucket(bucketKeyStorageVersion); vbkt != nil {
			return vbkt.Bucket(bucketKeySnapshot), vbkt.Bucket(bucketKeyParents), nil
		}
		return nil, nil, nil
	}
	vbkt, err := tx.CreateBucketIfNotExists(bucketKeyStorageVersion)
	if err != nil {
		return nil, nil, fmt.Errorf("create snapshot metadata schema: %w", err)
	}
	if bkt, err = vbkt.CreateBucketIfNotExists(bucketKeySnapshot); err != nil {
		return nil, nil, fmt.Errorf("create snapshots bucket: %w", err)
	}
	if pbkt, err = vbkt.CreateBucketIfNotExists(bucketKeyParents); err != nil {
		return nil, nil, fmt.Errorf("create parents bucket: %w", err)
	}
	return bkt, pbkt, nil
}

// snapshotBucket returns the record of key in bkt, or nil. bkt may be nil.
func snapshotBucket(bkt *bolt.Bucket, key string) *bolt.Bucket {
	if bkt == nil || key == "" {
		return nil
	}
	return bkt.Bucket([]byte(key))
}

// validateKey rejects keys bolt cannot store.
func validateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("snapshot key must not be empty: %w", errdefs.ErrInvalidArgument)
	case len(key) > bolt.MaxKeySize:
		return fmt.Errorf("snapshot key is %d bytes, more than the %d allowed: %w", len(key), bolt.MaxKeySize, errdefs.ErrInvalidArgument)
	}
	return nil
}

func applyOpts(opts []snapshots.Opt) (snapshots.Info, error) {
	var base snapshots.Info
	for _, opt := range opts {
		if err := opt(&base); err != nil {
			return snapshots.Info{}, err
		}
	}
	return base, nil
}

// parentIDs returns the IDs of parent and its ancestors, nearest first.
func parentIDs(bkt *bolt.Bucket, parent string) ([]string, error) {
	var ids []string
	for parent != "" {
		pbkt := snapshotBucket(bkt, parent)
		if pbkt == nil {
			return nil, fmt.Errorf("ancestor %q: %w", parent, errdefs.ErrNotFound)
		}
		ids = append(ids, formatID(readID(pbkt)))
		parent = string(pbkt.Get(bucketKeyParent))
	}
	return ids, nil
}

// childKey is the parents-bucket key linking child to parent: both IDs as
// uvarints, separated by a zero byte. Sorting by it groups children under
// their parent.
func childKey(parent, child uint64) []byte {
	b := binary.AppendUvarint(nil, parent)
	b = append(b, 0)
	return binary.AppendUvarint(b, child)
}

// hasChildren reports whether the parents bucket links any child to id.
func hasChildren(pbkt *bolt.Bucket, id uint64) bool {
	prefix := append(binary.AppendUvarint(nil, id), 0)
	k, _ := pbkt.Cursor().Seek(prefix)
	return k != nil && strings.HasPrefix(string(k), string(prefix))
}

func formatID(id uint64) string { return strconv.FormatUint(id, 10) }

func readID(bkt *bolt.Bucket) uint64 {
	id, _ := binary.Uvarint(bkt.Get(bucketKeyID))
	return id
}

func readKind(bkt *bolt.Bucket) snapshots.Kind {
	if k := bkt.Get(bucketKeyKind); len(k) == 1 {
		return snapshots.Kind(k[0])
	}
	return snapshots.KindUnknown
}

func readInfo(bkt *bolt.Bucket, name string) (snapshots.Info, error) {
	info := snapshots.Info{
		Kind:   readKind(bkt),
		Name:   name,
		Parent: string(bkt.Get(bucketKeyParent)),
	}
	for _, ts := range []struct {
		key []byte
		t   *time.Time
	}{{bucketKeyCreatedAt, &info.Created}, {bucketKeyUpdatedAt, &info.Updated}} {
		if v := bkt.Get(ts.key); v != nil {
			if err := ts.t.UnmarshalBinary(v); err != nil {
				return snapshots.Info{}, fmt.Errorf("snapshot %q: read %s: %w", name, ts.key, err)
			}
		}
	}
	if lbkt := bkt.Bucket(bucketKeyLabels); lbkt != nil {
		info.Labels = map[string]string{}
		if err := lbkt.ForEach(func(k, v []byte) error {
			info.Labels[string(k)] = string(v)
			return nil
		}); err != nil {
			return snapshots.Info{}, fmt.Errorf("snapshot %q: read labels: %w", name, err)
		}
	}
	return info, nil
}

func writeInfo(bkt *bolt.Bucket, id uint64, info snapshots.Info) error {
	if err := bkt.Put(bucketKeyID, binary.AppendUvarint(nil, id)); err != nil {
		return err
	}
	if err := bkt.Put(bucketKeyKind, []byte{byte(info.Kind)}); err != nil {
		return err
	}
	if info.Parent != "" {
		if err := bkt.Put(bucketKeyParent, []byte(info.Parent)); err != nil {
			return err
		}
	}
	if err := writeTimestamps(bkt, info.Created, info.Updated); err != nil {
		return err
	}
	return writeLabels(bkt, info.Labels)
}

func writeTimestamps(bkt *bolt.Bucket, created, updated time.Time) error {
	for _, ts := range []struct {
		key []byte
		t   time.Time
	}{{bucketKeyCreatedAt, created}, {bucketKeyUpdatedAt, updated}} {
		b, err := ts.t.MarshalBinary()
		if err != nil {
			return err
		}
		if err := bkt.Put(ts.key, b); err != nil {
			return err
		}
	}
	return nil
}

// writeLabels replaces the labels of a record. Labels with empty values
// are not stored, and are deleted from labels so the caller's copy matches.
func writeLabels(bkt *bolt.Bucket, labels map[string]string) error {
	if bkt.Bucket(bucketKeyLabels) != nil {
		if err := bkt.DeleteBucket(bucketKeyLabels); err != nil {
			return err
		}
	}
	for k, v := range labels {
		if v == "" {
			delete(labels, k)
			continue
		}
		if k == "" {
			return fmt.Errorf("label key must not be empty: %w", errdefs.ErrInvalidArgument)
		}
		if n := len(k) + len(v); n > maxLabelSize {
			return fmt.Errorf("label %.64q: key and value are %d bytes together, more than the %d allowed: %w",
				k, n, maxLabelSize, errdefs.ErrInvalidArgument)
		}
	}
	if len(labels) == 0 {
		return nil
	}
	lbkt, err := bkt.CreateBucket(bucketKeyLabels)
	if err != nil {
		return err
	}
	for k, v := range labels {
		if err := lbkt.Put([]byte(k), []byte(v)); err != nil {
			return fmt.Errorf("write label %.64q: %w", k, err)
		}
	}
	return nil
}

func readUsage(bkt *bolt.Bucket) snapshots.Usage {
	var u snapshots.Usage
	u.Inodes, _ = binary.Varint(bkt.Get(bucketKeyInodes))
	u.Size, _ = binary.Varint(bkt.Get(bucketKeySize))
	return u
}

func writeUsage(bkt *bolt.Bucket, u snapshots.Usage) error {
	if err := bkt.Put(bucketKeyInodes, binary.AppendVarint(nil, u.Inodes)); err != nil {
		return err
	}
	return bkt.Put(bucketKeySize, binary.AppendVarint(nil, u.Size))
}

func copyLabels(labels map[string]string) map[string]string {
	if labels == nil {
		return nil
	}
	c := make(map[string]string, len(labels))
	for k, v := range labels {
		c[k] = v
	}
	return c
}

// adaptInfo exposes info to filters: kind, name, parent and labels.<key>.
func adaptInfo(info snapshots.Info) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 0 {
			return "", false
		}
		switch fieldpath[0] {
		case "kind":
			switch info.Kind {
			case snapshots.KindActive:
				return "active", true
			case snapshots.KindView:
				return "view", true
			case snapshots.KindCommitted:
				return "committed", true
			}
		case "name":
			return info.Name, true
		case "parent":
			return info.Parent, true
		case "labels":
			if len(fieldpath) < 2 {
				return "", false
			}
			v, ok := info.Labels[strings.Join(fieldpath[1:], ".")]
			return v, ok
		}
		return "", false
	})
}
