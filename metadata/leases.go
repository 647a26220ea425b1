package metadata

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/identifiers"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/namespaces"
)

type leaseManager struct {
	db *DB
}

// NewLeaseManager returns the lease manager of db. A lease and everything
// it holds are roots for garbage collection until it is deleted or its
// containerd.io/gc.expire time passes.
func NewLeaseManager(db *DB) leases.Manager {
	return &leaseManager{db: db}
}

func (lm *leaseManager) Create(ctx context.Context, opts ...leases.Opt) (leases.Lease, error) {
	var l leases.Lease
	for _, opt := range opts {
		if err := opt(&l); err != nil {
			return leases.Lease{}, err
		}
	}
	if l.ID == "" {
		l.ID = randomLeaseID()
	}
	if err := validateLeaseID(l.ID); err != nil {
		return leases.Lease{}, err
	}
	if err := validateLabels(l.Labels); err != nil {
		return leases.Lease{}, fmt.Errorf("lease %q: %w", l.ID, err)
	}
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return leases.Lease{}, err
	}

	l.CreatedAt = time.Now().UTC()
	l.Labels = withoutEmpty(l.Labels)
	err = lm.db.Update(func(tx *bolt.Tx) error {
		bkt, err := createBucketIfNotExists(tx, namespacePath(ns, bucketKeyObjectLeases)...)
		if err != nil {
			return err
		}
		lbkt, err := bkt.CreateBucket([]byte(l.ID))
		if errors.Is(err, bolterrors.ErrBucketExists) {
			return fmt.Errorf("lease %q: %w", l.ID, errdefs.ErrAlreadyExists)
		}
		if err != nil {
			return fmt.Errorf("create lease %q: %w", l.ID, err)
		}
		if err := writeTime(lbkt, bucketKeyCreatedAt, l.CreatedAt); err != nil {
			return fmt.Errorf("lease %q: %w", l.ID, err)
		}
		if err := writeMap(lbkt, bucketKeyObjectLabels, l.Labels); err != nil {
			return fmt.Errorf("lease %q: %w", l.ID, err)
		}
		return nil
	})
	if err != nil {
		return leases.Lease{}, err
	}
	return l, nil
}

// Delete removes the lease; what it alone held is left to the next
// collection, or to one Delete waits for if the SynchronousDelete option
// is given.
func (lm *leaseManager) Delete(ctx context.Context, lease leases.Lease, opts ...leases.DeleteOpt) error {
	var dopts leases.DeleteOptions
	for _, opt := range opts {
		if err := opt(ctx, &dopts); err != nil {
			return err
		}
	}
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}

	err = lm.db.Update(func(tx *bolt.Tx) error {
		if getLeaseBucket(tx, ns, lease.ID) == nil {
			return fmt.Errorf("lease %q: %w", lease.ID, errdefs.ErrNotFound)
		}
		if err := getLeasesBucket(tx, ns).DeleteBucket([]byte(lease.ID)); err != nil {
			return fmt.Errorf("delete lease %q: %w", lease.ID, err)
		}
		lm.db.markDirty(false)
		return nil
	})
	if err != nil {
		return err
	}
	if dopts.Synchronous {
		return lm.db.collect(ctx)
	}
	return nil
}

func (lm *leaseManager) List(ctx context.Context, fs ...string) ([]leases.Lease, error) {
	return listRecords(ctx, lm.db, fs, leaseRecord, getLeasesBucket, readLease)
}

func (lm *leaseManager) AddResource(ctx context.Context, lease leases.Lease, r leases.Resource) error {
	return lm.updateResource(ctx, lease, r, putLeaseResource)
}

// DeleteResource releases r from the lease; releasing one it does not hold
// is not an error.
func (lm *leaseManager) DeleteResource(ctx context.Context, lease leases.Lease, r leases.Resource) error {
	return lm.updateResource(ctx, lease, r, func(bkt *bolt.Bucket, path [][]byte, id string) error {
		if err := deleteLeaseResource(bkt, path, id); err != nil {
			return fmt.Errorf("lease %q: %w", lease.ID, err)
		}
		lm.db.markDirty(false)
		return nil
	})
}

// updateResource applies change to the record of r in the lease's bucket,
// once r is known to be a resource a lease can hold.
func (lm *leaseManager) updateResource(ctx context.Context, lease leases.Lease, r leases.Resource,
	change func(bkt *bolt.Bucket, path [][]byte, id string) error) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	path, id, err := parseLeaseResource(r)
	if err != nil {
		return err
	}
	return lm.db.Update(func(tx *bolt.Tx) error {
		bkt := getLeaseBucket(tx, ns, lease.ID)
		if bkt == nil {
			return fmt.Errorf("lease %q: %w", lease.ID, errdefs.ErrNotFound)
		}
		return change(bkt, path, id)
	})
}

// ListResources returns the lease's resources: content, then ingests,
// images and snapshots, each sorted.
func (lm *leaseManager) ListResources(ctx context.Context, lease leases.Lease) ([]leases.Resource, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	var rs []leases.Resource
	err = lm.db.View(func(tx *bolt.Tx) error {
		bkt := getLeaseBucket(tx, ns, lease.ID)
		if bkt == nil {
			return fmt.Errorf("lease %q: %w", lease.ID, errdefs.ErrNotFound)
		}
		return walkLeaseResources(bkt, func(typ, id string) {
			rs = append(rs, leases.Resource{ID: id, Type: typ})
		})
	})
	if err != nil {
		return nil, err
	}
	return rs, nil
}

// walkLeaseResources calls fn with the type and id of each resource the
// lease in bkt holds.
func walkLeaseResources(bkt *bolt.Bucket, fn func(typ, id string)) error {
	for _, kind := range [][]byte{bucketKeyObjectContent, bucketKeyObjectIngests, bucketKeyObjectImages} {
		kbkt := bkt.Bucket(kind)
		if kbkt == nil {
			continue
		}
		if err := kbkt.ForEach(func(k, _ []byte) error {
			fn(string(kind), string(k))
			return nil
		}); err != nil {
			return fmt.Errorf("read lease %s: %w", kind, err)
		}
	}
	sbkt := bkt.Bucket(bucketKeyObjectSnapshots)
	if sbkt == nil {
		return nil
	}
	return sbkt.ForEachBucket(func(sn []byte) error {
		typ := string(bucketKeyObjectSnapshots) + "/" + string(sn)
		return sbkt.Bucket(sn).ForEach(func(k, _ []byte) error {
			fn(typ, string(k))
			return nil
		})
	})
}

// parseLeaseResource returns the buckets below the lease that hold r and
// the key r is stored under. The types are containerd's: "content" (a
// digest), "ingests" (a ref), "images" (a name) and "snapshots/<name>".
func parseLeaseResource(r leases.Resource) ([][]byte, string, error) {
	if r.ID == "" {
		return nil, "", fmt.Errorf("lease resource of type %q has no id: %w", r.Type, errdefs.ErrInvalidArgument)
	}
	kind, sub, hasSub := strings.Cut(r.Type, "/")
	switch kind {
	case string(bucketKeyObjectContent), string(bucketKeyObjectIngests), string(bucketKeyObjectImages):
		if hasSub {
			return nil, "", fmt.Errorf("lease resource type %q: %w", r.Type, errdefs.ErrInvalidArgument)
		}
		id := r.ID
		if kind == string(bucketKeyObjectContent) {
			dgst, err := digest.Parse(r.ID)
			if err != nil {
				return nil, "", fmt.Errorf("lease content resource %q: %v: %w", r.ID, err, errdefs.ErrInvalidArgument)
			}
			id = dgst.String()
		}
		return [][]byte{[]byte(kind)}, id, nil
	case string(bucketKeyObjectSnapshots):
		if sub == "" || strings.Contains(sub, "/") {
			return nil, "", fmt.Errorf("lease resource type %q: want snapshots/<snapshotter>: %w", r.Type, errdefs.ErrInvalidArgument)
		}
		return [][]byte{bucketKeyObjectSnapshots, []byte(sub)}, r.ID, nil
	}
	return nil, "", fmt.Errorf("lease resource type %q: %w", r.Type, errdefs.ErrNotImplemented)
}

func putLeaseResource(bkt *bolt.Bucket, path [][]byte, id string) error {
	for _, key := range path {
		var err error
		if bkt, err = bkt.CreateBucketIfNotExists(key); err != nil {
			return fmt.Errorf("create lease bucket %s: %w", key, err)
		}
	}
	if err := bkt.Put([]byte(id), []byte{}); err != nil {
		return fmt.Errorf("add lease resource %q: %w", id, err)
	}
	return nil
}

func deleteLeaseResource(bkt *bolt.Bucket, path [][]byte, id string) error {
	for _, key := range path {
		if bkt = bkt.Bucket(key); bkt == nil {
			return nil
		}
	}
	return bkt.Delete([]byte(id))
}

// leaseFromContext returns the lease the caller's writes go under.
func leaseFromContext(ctx context.Context) (string, bool) {
	return leases.FromContext(ctx)
}

// checkLease fails with NotFound if ctx names a lease ns does not have.
func checkLease(ctx context.Context, tx *bolt.Tx, ns string) error {
	if id, ok := leaseFromContext(ctx); ok && getLeaseBucket(tx, ns, id) == nil {
		return fmt.Errorf("lease %q: %w", id, errdefs.ErrNotFound)
	}
	return nil
}

// addLeaseResource adds the resource to the lease of ctx, if it has one,
// in the caller's transaction.
func addLeaseResource(ctx context.Context, tx *bolt.Tx, ns string, kind []byte, id string) error {
	lid, ok := leaseFromContext(ctx)
	if !ok {
		return nil
	}
	bkt := getLeaseBucket(tx, ns, lid)
	if bkt == nil {
		return fmt.Errorf("lease %q: %w", lid, errdefs.ErrNotFound)
	}
	if err := putLeaseResource(bkt, [][]byte{kind}, id); err != nil {
		return fmt.Errorf("lease %q: %w", lid, err)
	}
	return nil
}

// removeLeaseResource takes the resource out of the lease of ctx, if it
// has one and the lease holds it.
func removeLeaseResource(ctx context.Context, tx *bolt.Tx, ns string, kind []byte, id string) error {
	lid, ok := leaseFromContext(ctx)
	if !ok {
		return nil
	}
	bkt := getLeaseBucket(tx, ns, lid)
	if bkt == nil {
		return nil
	}
	if err := deleteLeaseResource(bkt, [][]byte{kind}, id); err != nil {
		return fmt.Errorf("lease %q: %w", lid, err)
	}
	return nil
}

func readLease(id string, bkt *bolt.Bucket) (leases.Lease, error) {
	l := leases.Lease{ID: id}
	var err error
	if l.CreatedAt, err = readTime(bkt, bucketKeyCreatedAt); err != nil {
		return leases.Lease{}, fmt.Errorf("lease %q: %w", id, err)
	}
	if l.Labels, err = readMap(bkt, bucketKeyObjectLabels); err != nil {
		return leases.Lease{}, fmt.Errorf("lease %q: %w", id, err)
	}
	return l, nil
}

// maxLeaseIDLength is the identifiers package's limit.
const maxLeaseIDLength = 76

// looseLeaseID is the identifier alphabet without the rule that '.', '_'
// and '-' only separate alphanumeric runs. containerd does not check lease
// ids, and its clients' random ones ("<nanoseconds>-<4 base64url chars>")
// break that rule now and then.
var looseLeaseID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func validateLeaseID(id string) error {
	err := identifiers.Validate(id)
	if err != nil && len(id) <= maxLeaseIDLength && looseLeaseID.MatchString(id) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lease id: %w", err)
	}
	return nil
}

// randomLeaseID makes an id for a lease created without one, valid as an
// identifier.
func randomLeaseID() string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%d-%s", time.Now().UnixNano(), hex.EncodeToString(b[:]))
}
