package metadata

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/gc"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/snapshots"
)

// The resource types of the collection graph, numbered as in containerd.
const (
	resourceUnknown gc.ResourceType = iota
	resourceContent
	resourceSnapshot
	resourceContainer
	resourceTask
	resourceImage
	resourceLease
	resourceIngest
)

// Flat variants are what a lease labelled containerd.io/gc.flat holds:
// the resource itself, not what it references.
const (
	flat                 = 0x20
	resourceContentFlat  = resourceContent | flat
	resourceSnapshotFlat = resourceSnapshot | flat
	resourceImageFlat    = resourceImage | flat
)

// The labels that steer collection.
var (
	// labelGCRoot on a blob or snapshot makes it a root.
	labelGCRoot = []byte("containerd.io/gc.root")
	// labelGCContentRef, alone or followed by '.' or '/' and any name,
	// refers to the blob whose digest is its value.
	labelGCContentRef = []byte("containerd.io/gc.ref.content")
	// labelGCSnapRef followed by a snapshotter's name (and optionally '/'
	// and any name) refers to the snapshot whose key is its value.
	labelGCSnapRef = []byte("containerd.io/gc.ref.snapshot.")
	// labelGCExpire on a lease, in RFC 3339, ends it as a root.
	labelGCExpire = []byte(leases.LabelExpire)
	// labelGCFlat on a lease keeps only what it names, not their
	// references.
	labelGCFlat = []byte("containerd.io/gc.flat")
)

// GarbageCollect removes what no root reaches: blob, ingest and snapshot
// records, expired leases, then the blobs and ingests of the backing store
// and the backing snapshots that no namespace refers to any more.
//
// The roots are images, containers, leases that have not expired, blobs
// and snapshots labelled containerd.io/gc.root and ingests that have not
// expired; what they reach, through image targets, ingests' expected
// digests, snapshot parents and gc.ref labels, is kept.
//
// Marking and sweeping the records are one write transaction, so nothing
// can be linked in between. The backing stores are cleaned afterwards,
// each with only its own writes held off; see contentStore.cleanup and
// snapshotter.cleanup.
func (m *DB) GarbageCollect(ctx context.Context) (gc.Stats, error) {
	// Mark and sweep are one write transaction, in line with the others:
	// writes commit one transaction at a time (see commitQueue), so none
	// can add a reference between the mark and the sweep, and none has to
	// stop while the collection waits its turn; it costs them one commit.
	// The dirty counts are taken inside it for the same reason: every
	// deletion before it is swept by it, every one after counts for the
	// next.
	var (
		start        time.Time
		dirty        uint32
		cleanContent bool
	)
	m.wlock.RLock() // Close waits for a collection under way
	err := m.commits.run(m.db, func(tx *bolt.Tx) error {
		start = time.Now()
		marked, err := markTx(ctx, tx)
		if err != nil {
			return err
		}
		swept, err := m.sweepTx(ctx, tx, marked)
		if err != nil {
			return err
		}
		dirty = m.dirty.Swap(0)
		cleanContent = m.dirtyContent.Swap(false)
		if swept == 0 {
			return errNothingSwept
		}
		return nil
	}, true)
	m.wlock.RUnlock()
	if err != nil && !errors.Is(err, errNothingSwept) {
		// Not swept: what called for it still does.
		m.dirty.Add(dirty)
		if cleanContent {
			m.dirtyContent.Store(true)
		}
		return gc.Stats{}, fmt.Errorf("collect metadata: %w", err)
	}
	stats := gc.Stats{MetaD: time.Since(start)}

	ctx = context.WithoutCancel(ctx) // a half-done cleanup only delays
	if cleanContent && m.cs != nil {
		start := time.Now()
		if err := m.cs.cleanup(ctx); err != nil {
			// What was left is found again next time.
			m.dirtyContent.Store(true)
			log.G(ctx).WithError(err).Warn("content garbage collection failed")
		}
		stats.ContentD = time.Since(start)
	}
	m.cleanupSnapshotters(ctx, &stats)

	log.G(ctx).WithField("d", stats.MetaD).WithField("content", stats.ContentD).Debug("garbage collected")
	return stats, nil
}

// cleanupSnapshotters removes the backing snapshots that no record names
// from each snapshotter that lost records since its last cleanup. One that
// fails stays dirty, for the next collection to try again.
func (m *DB) cleanupSnapshotters(ctx context.Context, stats *gc.Stats) {
	for _, name := range m.takeDirtySnapshotters() {
		s, ok := m.ss[name]
		if !ok {
			continue // records of a snapshotter this daemon lacks
		}
		start := time.Now()
		if err := s.cleanup(ctx); err != nil {
			m.dirtySSMu.Lock()
			m.dirtySS[name] = struct{}{}
			m.dirtySSMu.Unlock()
			log.G(ctx).WithError(err).WithField("snapshotter", name).Warn("snapshot garbage collection failed")
		}
		if stats.SnapshotD == nil {
			stats.SnapshotD = map[string]time.Duration{}
		}
		stats.SnapshotD[name] = time.Since(start)
	}
}

// markTx returns every node the roots reach in tx.
func markTx(ctx context.Context, tx *bolt.Tx) (map[gc.Node]struct{}, error) {
	roots, err := scanRoots(ctx, tx, time.Now())
	if err != nil {
		return nil, err
	}
	return gc.Tricolor(roots, func(n gc.Node) ([]gc.Node, error) {
		return references(tx, n)
	})
}

// forEachNamespace calls fn with each namespace bucket.
func forEachNamespace(tx *bolt.Tx, fn func(ns string, bkt *bolt.Bucket) error) error {
	top := tx.Bucket(bucketKeyVersion)
	if top == nil {
		return nil
	}
	return top.ForEachBucket(func(k []byte) error {
		return fn(string(k), top.Bucket(k))
	})
}

// forEachBucketIn calls fn with the name and bucket of each bucket under
// keys below bkt, if there is such a bucket.
func forEachBucketIn(bkt *bolt.Bucket, keys [][]byte, fn func(k []byte, b *bolt.Bucket) error) error {
	for _, key := range keys {
		if bkt = bkt.Bucket(key); bkt == nil {
			return nil
		}
	}
	return bkt.ForEachBucket(func(k []byte) error { return fn(k, bkt.Bucket(k)) })
}

var (
	leasesPath     = [][]byte{bucketKeyObjectLeases}
	imagesPath     = [][]byte{bucketKeyObjectImages}
	containersPath = [][]byte{bucketKeyObjectContainers}
	blobsPath      = [][]byte{bucketKeyObjectContent, bucketKeyObjectBlob}
	ingestsPath    = [][]byte{bucketKeyObjectContent, bucketKeyObjectIngests}
	snapshotsPath  = [][]byte{bucketKeyObjectSnapshots}
)

// scanRoots returns the roots of every namespace as of now.
func scanRoots(ctx context.Context, tx *bolt.Tx, now time.Time) ([]gc.Node, error) {
	var roots []gc.Node
	err := forEachNamespace(tx, func(ns string, nbkt *bolt.Bucket) error {
		add := func(t gc.ResourceType, key string) {
			roots = append(roots, gc.Node{Type: t, Namespace: ns, Key: key})
		}

		// A live lease is a root, and so is everything it holds. Holding
		// is not referencing: nothing links to a lease, so its resources
		// are listed here rather than followed as edges.
		err := forEachBucketIn(nbkt, leasesPath, func(id []byte, lbkt *bolt.Bucket) error {
			if leaseExpired(ctx, ns, string(id), lbkt, now) {
				return nil
			}
			var isFlat gc.ResourceType
			if lb := lbkt.Bucket(bucketKeyObjectLabels); lb != nil && lb.Get(labelGCFlat) != nil {
				isFlat = flat
			}
			add(resourceLease, string(id))
			return walkLeaseResources(lbkt, func(typ, key string) {
				switch typ {
				case string(bucketKeyObjectContent):
					add(resourceContent|isFlat, key)
				case string(bucketKeyObjectIngests):
					add(resourceIngest, key)
				case string(bucketKeyObjectImages):
					add(resourceImage|isFlat, key)
				default: // snapshots/<snapshotter>
					add(resourceSnapshot|isFlat, typ[len(bucketKeyObjectSnapshots)+1:]+"/"+key)
				}
			})
		})
		if err != nil {
			return fmt.Errorf("namespace %q: scan leases: %w", ns, err)
		}

		err = forEachBucketIn(nbkt, imagesPath, func(name []byte, _ *bolt.Bucket) error {
			add(resourceImage, string(name))
			return nil
		})
		if err != nil {
			return fmt.Errorf("namespace %q: scan images: %w", ns, err)
		}

		err = forEachBucketIn(nbkt, containersPath, func(id []byte, _ *bolt.Bucket) error {
			add(resourceContainer, string(id))
			return nil
		})
		if err != nil {
			return fmt.Errorf("namespace %q: scan containers: %w", ns, err)
		}

		// An ingest without a lease is a root until it expires; one with
		// a lease has no expiry and lives as long as the lease.
		err = forEachBucketIn(nbkt, ingestsPath, func(ref []byte, ibkt *bolt.Bucket) error {
			if ibkt.Get(bucketKeyExpireAt) == nil {
				return nil
			}
			exp, err := readTime(ibkt, bucketKeyExpireAt)
			if err != nil {
				return err
			}
			if exp.After(now) {
				add(resourceIngest, string(ref))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("namespace %q: scan ingests: %w", ns, err)
		}

		err = forEachBucketIn(nbkt, blobsPath, func(dgst []byte, bbkt *bolt.Bucket) error {
			if lb := bbkt.Bucket(bucketKeyObjectLabels); lb != nil && lb.Get(labelGCRoot) != nil {
				add(resourceContent, string(dgst))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("namespace %q: scan content: %w", ns, err)
		}

		err = forEachBucketIn(nbkt, snapshotsPath, func(sn []byte, snbkt *bolt.Bucket) error {
			return snbkt.ForEachBucket(func(key []byte) error {
				if lb := snbkt.Bucket(key).Bucket(bucketKeyObjectLabels); lb != nil && lb.Get(labelGCRoot) != nil {
					add(resourceSnapshot, string(sn)+"/"+string(key))
				}
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("namespace %q: scan snapshots: %w", ns, err)
		}
		return nil
	})
	return roots, err
}

// leaseExpired reports whether the lease's containerd.io/gc.expire time has
// passed. A value that does not parse is ignored, as containerd does: the
// lease then never expires.
func leaseExpired(ctx context.Context, ns, id string, lbkt *bolt.Bucket, now time.Time) bool {
	lb := lbkt.Bucket(bucketKeyObjectLabels)
	if lb == nil {
		return false
	}
	v := lb.Get(labelGCExpire)
	if v == nil {
		return false
	}
	exp, err := time.Parse(time.RFC3339, string(v))
	if err != nil {
		log.G(ctx).WithError(err).WithField("namespace", ns).WithField("lease", id).
			Infof("ignoring invalid lease expiry %q", v)
		return false
	}
	return now.After(exp)
}

// references returns the nodes n links to.
func references(tx *bolt.Tx, n gc.Node) ([]gc.Node, error) {
	var refs []gc.Node
	add := func(t gc.ResourceType, key string) {
		refs = append(refs, gc.Node{Type: t, Namespace: n.Namespace, Key: key})
	}
	nsPath := func(keys ...[]byte) *bolt.Bucket {
		return getBucket(tx, namespacePath(n.Namespace, keys...)...)
	}

	// A missing record is not an error: labels and leases may name
	// things that were never there or are gone.
	switch n.Type {
	case resourceContent:
		if bkt := nsPath(bucketKeyObjectContent, bucketKeyObjectBlob, []byte(n.Key)); bkt != nil {
			labelRefs(bkt, add)
		}
	case resourceImage, resourceImageFlat:
		bkt := nsPath(bucketKeyObjectImages, []byte(n.Key))
		if bkt == nil {
			break
		}
		if tbkt := bkt.Bucket(bucketKeyTarget); tbkt != nil {
			if d := tbkt.Get(bucketKeyDigest); len(d) > 0 {
				add(resourceContent|(n.Type&flat), string(d))
			}
		}
		if n.Type&flat == 0 {
			labelRefs(bkt, add)
		}
	case resourceIngest:
		if bkt := nsPath(bucketKeyObjectContent, bucketKeyObjectIngests, []byte(n.Key)); bkt != nil {
			if d := bkt.Get(bucketKeyExpected); len(d) > 0 {
				add(resourceContent, string(d))
			}
		}
	case resourceContainer:
		bkt := nsPath(bucketKeyObjectContainers, []byte(n.Key))
		if bkt == nil {
			break
		}
		if sn := bkt.Get(bucketKeySnapshotter); len(sn) > 0 {
			add(resourceSnapshot, string(sn)+"/"+string(bkt.Get(bucketKeySnapshotKey)))
		}
		labelRefs(bkt, add)
	case resourceSnapshot, resourceSnapshotFlat:
		sn, key, ok := strings.Cut(n.Key, "/")
		if !ok {
			break
		}
		bkt := nsPath(bucketKeyObjectSnapshots, []byte(sn), []byte(key))
		if bkt == nil {
			break
		}
		// A snapshot is nothing without its parents, so even a flat
		// lease keeps them; only its labels' references are not followed.
		if p := bkt.Get(bucketKeyParent); len(p) > 0 {
			add(n.Type, sn+"/"+string(p))
		}
		if n.Type&flat == 0 {
			labelRefs(bkt, add)
		}
	}
	return refs, nil
}

// labelRefs reports the gc.ref labels of the object in bkt.
func labelRefs(bkt *bolt.Bucket, add func(gc.ResourceType, string)) {
	lb := bkt.Bucket(bucketKeyObjectLabels)
	if lb == nil {
		return
	}
	c := lb.Cursor()
	for k, v := c.Seek(labelGCContentRef); bytes.HasPrefix(k, labelGCContentRef); k, v = c.Next() {
		// Allow "gc.ref.content", "gc.ref.content.<name>" and
		// "gc.ref.content/<name>", not "gc.ref.contentfoo".
		if rest := k[len(labelGCContentRef):]; len(rest) > 0 && rest[0] != '.' && rest[0] != '/' {
			continue
		}
		add(resourceContent, string(v))
	}
	for k, v := c.Seek(labelGCSnapRef); bytes.HasPrefix(k, labelGCSnapRef); k, v = c.Next() {
		sn, _, _ := bytes.Cut(k[len(labelGCSnapRef):], []byte("/"))
		if len(sn) == 0 {
			continue
		}
		add(resourceSnapshot, string(sn)+"/"+string(v))
	}
}

// errNothingSwept rolls back a sweep that deleted nothing: bolt would sync
// the commit of an unchanged transaction all the same.
var errNothingSwept = errors.New("nothing swept")

// sweepTx deletes the lease, ingest, blob and snapshot records marked does
// not hold, and returns how many it deleted.
func (m *DB) sweepTx(ctx context.Context, tx *bolt.Tx, marked map[gc.Node]struct{}) (int, error) {
	swept := 0
	err := forEachNamespace(tx, func(ns string, nbkt *bolt.Bucket) error {
		n, err := m.sweepSnapshots(ctx, nbkt, ns, marked)
		if err != nil {
			return fmt.Errorf("namespace %q: %w", ns, err)
		}
		swept += n
		for _, s := range []struct {
			path [][]byte
			typ  gc.ResourceType
		}{
			{leasesPath, resourceLease},
			{ingestsPath, resourceIngest},
			{blobsPath, resourceContent},
		} {
			n, err := sweepBucket(ctx, nbkt, ns, s.path, s.typ, marked)
			if err != nil {
				return fmt.Errorf("namespace %q: %w", ns, err)
			}
			if n > 0 && s.typ != resourceLease {
				m.dirtyContent.Store(true)
			}
			swept += n
		}
		return nil
	})
	return swept, err
}

// sweepSnapshots deletes the namespace's snapshot records that are not
// marked, marks their snapshotters for cleanup and returns how many it
// deleted.
//
// A marked snapshot's parent is marked too, so the children of a deleted
// record are deleted with it; only its link in a kept parent needs undoing.
func (m *DB) sweepSnapshots(ctx context.Context, nbkt *bolt.Bucket, ns string, marked map[gc.Node]struct{}) (int, error) {
	swept := 0
	err := forEachBucketIn(nbkt, snapshotsPath, func(snb []byte, snbkt *bolt.Bucket) error {
		sn := string(snb)
		// Deleting under a cursor skips entries; collect the keys first.
		var unmarked [][]byte
		err := snbkt.ForEachBucket(func(k []byte) error {
			if _, ok := marked[gc.Node{Type: resourceSnapshot, Namespace: ns, Key: sn + "/" + string(k)}]; !ok {
				unmarked = append(unmarked, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range unmarked {
			if p := snbkt.Bucket(k).Get(bucketKeyParent); len(p) > 0 {
				if pbkt := snbkt.Bucket(p); pbkt != nil {
					if err := unlinkChild(pbkt, string(k)); err != nil {
						return fmt.Errorf("snapshot %s/%s: %w", sn, k, err)
					}
				}
			}
		}
		for _, k := range unmarked {
			if err := snbkt.DeleteBucket(k); err != nil {
				return fmt.Errorf("remove snapshot %s/%s: %w", sn, k, err)
			}
			log.G(ctx).WithField("namespace", ns).WithField("snapshotter", sn).WithField("key", string(k)).
				Debug("garbage collected snapshot")
		}
		if len(unmarked) > 0 {
			m.dirtySSMu.Lock()
			m.dirtySS[sn] = struct{}{}
			m.dirtySSMu.Unlock()
		}
		swept += len(unmarked)
		return nil
	})
	return swept, err
}

// sweepBucket deletes the buckets under path whose nodes are not marked,
// and returns how many it deleted.
func sweepBucket(ctx context.Context, nbkt *bolt.Bucket, ns string, path [][]byte, typ gc.ResourceType, marked map[gc.Node]struct{}) (int, error) {
	bkt := nbkt
	for _, key := range path {
		if bkt = bkt.Bucket(key); bkt == nil {
			return 0, nil
		}
	}
	// Deleting under a cursor skips entries; collect the names first.
	var unmarked [][]byte
	err := bkt.ForEachBucket(func(k []byte) error {
		if _, ok := marked[gc.Node{Type: typ, Namespace: ns, Key: string(k)}]; !ok {
			unmarked = append(unmarked, k)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range unmarked {
		if err := bkt.DeleteBucket(k); err != nil {
			return 0, fmt.Errorf("remove %s %q: %w", bytes.Join(path, []byte("/")), k, err)
		}
		log.G(ctx).WithField("namespace", ns).WithField("key", string(k)).
			Debugf("garbage collected %s", bytes.Join(path, []byte("/")))
	}
	return len(unmarked), nil
}

// cleanup removes the backing store's blobs that no namespace has a record
// of or is sharing into an ingest, and its ingests no namespace ingest
// refers to.
//
// The backing store is walked without l, which every content write holds
// shared: walking it is the slow part (a stat per blob, a few reads per
// ingest), and new writes need not wait for it. Then, with l held
// exclusively, so that nothing links a namespace to backing content (a
// commit, a new ingest) meanwhile, the records are read again and only
// the candidates they still do not name are deleted: a blob committed
// during the walk is either recorded by then, and kept, or was not in the
// walk.
func (cs *contentStore) cleanup(ctx context.Context) error {
	blobs, refs, err := cs.backingInUse()
	if err != nil {
		return err
	}
	var unused []digest.Digest
	err = cs.backing.Walk(ctx, func(info content.Info) error {
		if _, ok := blobs[info.Digest]; !ok {
			unused = append(unused, info.Digest)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk backing content: %w", err)
	}
	statuses, err := cs.backing.ListStatuses(ctx)
	if err != nil {
		return fmt.Errorf("list backing ingests: %w", err)
	}
	var stale []string
	for _, st := range statuses {
		if _, ok := refs[st.Ref]; !ok {
			stale = append(stale, st.Ref)
		}
	}
	if len(unused) == 0 && len(stale) == 0 {
		return nil
	}

	cs.l.Lock()
	defer cs.l.Unlock()
	if blobs, refs, err = cs.backingInUse(); err != nil {
		return err
	}
	var errs []error
	for _, dgst := range unused {
		if _, ok := blobs[dgst]; ok {
			continue // committed during the walk
		}
		if err := cs.backing.Delete(ctx, dgst); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove blob %v: %w", dgst, err))
			continue
		}
		log.G(ctx).WithField("digest", dgst).Debug("removed content")
	}
	for _, ref := range stale {
		if _, ok := refs[ref]; ok {
			continue
		}
		if err := cs.backing.Abort(ctx, ref); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("abort ingest %q: %w", ref, err))
			continue
		}
		log.G(ctx).WithField("ref", ref).Debug("aborted ingest")
	}
	return errors.Join(errs...)
}

// backingInUse returns the backing blobs and ingests that namespaces'
// records name.
func (cs *contentStore) backingInUse() (map[digest.Digest]struct{}, map[string]struct{}, error) {
	blobs := map[digest.Digest]struct{}{}
	refs := map[string]struct{}{}
	err := cs.db.View(func(tx *bolt.Tx) error {
		return forEachNamespace(tx, func(ns string, nbkt *bolt.Bucket) error {
			err := forEachBucketIn(nbkt, blobsPath, func(k []byte, _ *bolt.Bucket) error {
				blobs[digest.Digest(k)] = struct{}{}
				return nil
			})
			if err != nil {
				return err
			}
			return forEachBucketIn(nbkt, ingestsPath, func(_ []byte, ibkt *bolt.Bucket) error {
				// The expected blob may be another namespace's, which
				// could drop it while this one takes it over.
				if d := ibkt.Get(bucketKeyExpected); len(d) > 0 {
					blobs[digest.Digest(d)] = struct{}{}
				}
				if r := ibkt.Get(bucketKeyRef); len(r) > 0 {
					refs[string(r)] = struct{}{}
				}
				return nil
			})
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read content records: %w", err)
	}
	return blobs, refs, nil
}

// cleanup removes the backing snapshots that no namespace's record names,
// children before parents, then lets the snapshotter reclaim what earlier
// removals left if it can.
//
// It holds l exclusively, so no snapshot is made or recorded between
// reading the records and removing: one made while a cleanup waits is
// either recorded before the records are read, and kept, or made after
// the removals. A backing snapshot still under a kept one stays: the
// backing snapshotter refuses to remove a parent, and that is not an error.
func (s *snapshotter) cleanup(ctx context.Context) error {
	s.l.Lock()
	defer s.l.Unlock()

	named := map[string]struct{}{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return forEachNamespace(tx, func(_ string, nbkt *bolt.Bucket) error {
			keys := [][]byte{bucketKeyObjectSnapshots, []byte(s.name)}
			return forEachBucketIn(nbkt, keys, func(_ []byte, sbkt *bolt.Bucket) error {
				if bkey := sbkt.Get(bucketKeyName); len(bkey) > 0 {
					named[string(bkey)] = struct{}{}
				}
				return nil
			})
		})
	})
	if err != nil {
		return fmt.Errorf("read snapshot records: %w", err)
	}

	// The backing snapshots as a forest: how many children each has and
	// each one's parent, so that leaves can be removed, then the parents
	// they leave childless.
	var (
		children = map[string]int{}
		parents  = map[string]string{}
		all      []string
	)
	err = s.backing.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		all = append(all, info.Name)
		if info.Parent != "" {
			parents[info.Name] = info.Parent
			children[info.Parent]++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk backing snapshots: %w", err)
	}

	var leaves []string
	for _, key := range all {
		if _, ok := named[key]; !ok && children[key] == 0 {
			leaves = append(leaves, key)
		}
	}
	var errs []error
	for len(leaves) > 0 {
		key := leaves[len(leaves)-1]
		leaves = leaves[:len(leaves)-1]
		if err := s.backing.Remove(ctx, key); err != nil {
			if !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("remove snapshot %q: %w", key, err))
			}
			continue
		}
		log.G(ctx).WithField("snapshotter", s.name).WithField("key", key).Debug("removed snapshot")
		if p, ok := parents[key]; ok {
			children[p]--
			if _, named := named[p]; !named && children[p] == 0 {
				leaves = append(leaves, p)
			}
		}
	}

	if c, ok := s.backing.(snapshots.Cleaner); ok {
		if err := c.Cleanup(ctx); err != nil {
			errs = append(errs, fmt.Errorf("clean up %s snapshotter: %w", s.name, err))
		}
	}
	return errors.Join(errs...)
}
