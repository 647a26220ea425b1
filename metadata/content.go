package metadata

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/filters"
	"github.com/llitfkitfk/containerd/namespaces"
)

// ingestTTL is how long an ingest no lease holds survives collection.
const ingestTTL = 24 * time.Hour

// contentStore is the per-namespace view of a backing store. Blobs live
// once in the backing store; a namespace sees those it has a record of,
// made when it commits one. Labels and times are the record's.
//
// Content is shared: a namespace may take over a blob another one has by
// writing an ingest that expects its digest, without sending the data.
type contentStore struct {
	db      *DB
	backing content.Store

	// l orders the backing store's cleanup after a collection against the
	// operations that create records pointing into it: those hold it
	// shared, the cleanup exclusively, so the cleanup's view of what is
	// referenced stays true while it deletes.
	l sync.RWMutex
}

func newContentStore(db *DB, backing content.Store) *contentStore {
	return &contentStore{db: db, backing: backing}
}

func (cs *contentStore) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return content.Info{}, err
	}
	info := content.Info{Digest: dgst}
	err = cs.db.View(func(tx *bolt.Tx) error {
		bkt := getBlobBucket(tx, ns, dgst)
		if bkt == nil {
			return fmt.Errorf("content %v: %w", dgst, errdefs.ErrNotFound)
		}
		return readInfo(&info, bkt)
	})
	if err != nil {
		return content.Info{}, err
	}
	return info, nil
}

func (cs *contentStore) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return content.Info{}, err
	}

	cs.l.RLock()
	defer cs.l.RUnlock()

	if len(fieldpaths) == 0 {
		fieldpaths = []string{"labels"}
	}
	var updated content.Info
	err = cs.db.Update(func(tx *bolt.Tx) error {
		updated = content.Info{Digest: info.Digest}
		bkt := getBlobBucket(tx, ns, info.Digest)
		if bkt == nil {
			return fmt.Errorf("content %v: %w", info.Digest, errdefs.ErrNotFound)
		}
		if err := readInfo(&updated, bkt); err != nil {
			return err
		}
		for _, path := range fieldpaths {
			if !applyMapPath(&updated.Labels, info.Labels, path, "labels") {
				return fmt.Errorf("content %v: cannot update field %q: %w", info.Digest, path, errdefs.ErrInvalidArgument)
			}
		}
		if err := validateLabels(updated.Labels); err != nil {
			return fmt.Errorf("content %v: %w", info.Digest, err)
		}
		updated.Labels = withoutEmpty(updated.Labels)
		updated.UpdatedAt = time.Now().UTC()
		return writeInfo(&updated, bkt)
	})
	if err != nil {
		return content.Info{}, err
	}
	return updated, nil
}

func (cs *contentStore) Walk(ctx context.Context, fn content.WalkFunc, fs ...string) error {
	ns, filter, err := namespaceAndFilter(ctx, fs)
	if err != nil {
		return err
	}

	// Collect first: fn may call back into the store, which must not
	// happen inside a transaction.
	var infos []content.Info
	err = cs.db.View(func(tx *bolt.Tx) error {
		bkt := getBlobsBucket(tx, ns)
		if bkt == nil {
			return nil
		}
		// Filters read each record in place: one they skip is not
		// decoded.
		ra := &recordAdaptor{kind: blobRecord}
		return bkt.ForEachBucket(func(k []byte) error {
			ra.name, ra.bkt = k, bkt.Bucket(k)
			if !filter.Match(ra) {
				return nil
			}
			dgst, err := digest.Parse(string(k))
			if err != nil {
				return nil // not a blob record
			}
			info := content.Info{Digest: dgst}
			if err := readInfo(&info, ra.bkt); err != nil {
				return err
			}
			infos = append(infos, info)
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, info := range infos {
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes the namespace's record of the blob. The data stays in the
// backing store until a collection finds no namespace refers to it.
func (cs *contentStore) Delete(ctx context.Context, dgst digest.Digest) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}

	cs.l.RLock()
	defer cs.l.RUnlock()

	return cs.db.Update(func(tx *bolt.Tx) error {
		if getBlobBucket(tx, ns, dgst) == nil {
			return fmt.Errorf("content %v: %w", dgst, errdefs.ErrNotFound)
		}
		if err := getBlobsBucket(tx, ns).DeleteBucket([]byte(dgst)); err != nil {
			return fmt.Errorf("delete content %v: %w", dgst, err)
		}
		if err := removeLeaseResource(ctx, tx, ns, bucketKeyObjectContent, string(dgst)); err != nil {
			return err
		}
		cs.db.markDirty(true)
		return nil
	})
}

// ReaderAt opens the blob if the namespace has it.
func (cs *contentStore) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	err = cs.db.View(func(tx *bolt.Tx) error {
		if getBlobBucket(tx, ns, desc.Digest) == nil {
			return fmt.Errorf("content %v: %w", desc.Digest, errdefs.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return cs.backing.ReaderAt(ctx, desc)
}

func (cs *contentStore) Status(ctx context.Context, ref string) (content.Status, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return content.Status{}, err
	}
	var bref string
	err = cs.db.View(func(tx *bolt.Tx) error {
		bref = backingRef(tx, ns, ref)
		if bref == "" {
			return fmt.Errorf("ingest %q: %w", ref, errdefs.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return content.Status{}, err
	}
	st, err := cs.backing.Status(ctx, bref)
	if err != nil {
		return content.Status{}, fmt.Errorf("ingest %q: %w", ref, err)
	}
	st.Ref = ref
	return st, nil
}

// ListStatuses reports the namespace's ingests that have data in the
// backing store; one sharing an existing blob has none and is left out.
func (cs *contentStore) ListStatuses(ctx context.Context, fs ...string) ([]content.Status, error) {
	ns, filter, err := namespaceAndFilter(ctx, fs)
	if err != nil {
		return nil, err
	}

	type ingest struct{ ref, bref string }
	var ingests []ingest
	err = cs.db.View(func(tx *bolt.Tx) error {
		bkt := getIngestsBucket(tx, ns)
		if bkt == nil {
			return nil
		}
		return bkt.ForEachBucket(func(k []byte) error {
			if bref := bkt.Bucket(k).Get(bucketKeyRef); len(bref) > 0 {
				ingests = append(ingests, ingest{string(k), string(bref)})
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}

	var statuses []content.Status
	for _, in := range ingests {
		st, err := cs.backing.Status(ctx, in.bref)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ingest %q: %w", in.ref, err)
		}
		st.Ref = in.ref
		if filter.Match(adaptStatus(st)) {
			statuses = append(statuses, st)
		}
	}
	return statuses, nil
}

func (cs *contentStore) Abort(ctx context.Context, ref string) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}

	cs.l.RLock()
	defer cs.l.RUnlock()

	return cs.db.updateAlone(func(tx *bolt.Tx) error {
		bkt := getIngestBucket(tx, ns, ref)
		if bkt == nil {
			return fmt.Errorf("ingest %q: %w", ref, errdefs.ErrNotFound)
		}
		bref := string(bkt.Get(bucketKeyRef))
		if err := getIngestsBucket(tx, ns).DeleteBucket([]byte(ref)); err != nil {
			return fmt.Errorf("delete ingest %q: %w", ref, err)
		}
		if err := removeLeaseResource(ctx, tx, ns, bucketKeyObjectIngests, ref); err != nil {
			return err
		}
		// Aborting inside the transaction keeps the record if the backing
		// store refuses. A shared ingest never written to has nothing
		// there, hence NotFound is fine.
		if bref == "" {
			return nil
		}
		if err := cs.backing.Abort(ctx, bref); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("abort ingest %q: %w", ref, err)
		}
		return nil
	})
}

// Writer opens the namespace's ingest ref. If the namespace already has
// the expected blob it is AlreadyExists (after adding the blob to the
// context's lease, as a write would have). If only the backing store has
// it, the writer shares it: the ingest reads as complete, and Commit makes
// the record without the data being sent again.
func (cs *contentStore) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wopts content.WriterOpts
	for _, opt := range opts {
		if err := opt(&wopts); err != nil {
			return nil, err
		}
	}
	if wopts.Ref == "" {
		return nil, fmt.Errorf("ingest ref must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	if d := wopts.Desc.Digest; d != "" {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("ingest %q: expected digest %q: %v: %w", wopts.Ref, d, err, errdefs.ErrInvalidArgument)
		}
	}
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}

	cs.l.RLock()
	defer cs.l.RUnlock()

	var (
		exists, shared bool
		bref           string
		desc           = wopts.Desc
	)
	err = cs.db.Update(func(tx *bolt.Tx) error {
		exists, shared, desc = false, false, wopts.Desc
		if desc.Digest != "" {
			if getBlobBucket(tx, ns, desc.Digest) != nil {
				// Commit the lease before reporting AlreadyExists, so
				// that a client relying on it keeps the blob.
				exists = true
				return addLeaseResource(ctx, tx, ns, bucketKeyObjectContent, string(desc.Digest))
			}
			if info, err := cs.backing.Info(ctx, desc.Digest); err == nil && (desc.Size == 0 || desc.Size == info.Size) {
				shared = true
				desc.Size = info.Size
			}
		}

		bkt, err := createBucketIfNotExists(tx, namespacePath(ns, bucketKeyObjectContent, bucketKeyObjectIngests, []byte(wopts.Ref))...)
		if err != nil {
			return err
		}
		leased, err := addIngestLease(ctx, tx, ns, wopts.Ref)
		if err != nil {
			return err
		}
		if bref, err = ensureBackingRef(bkt, ns, wopts.Ref); err != nil {
			return err
		}
		if !leased {
			// Nothing else keeps an unleased ingest; give it a day.
			if err := writeTime(bkt, bucketKeyExpireAt, time.Now().UTC().Add(ingestTTL)); err != nil {
				return err
			}
		}
		if shared {
			if err := bkt.Put(bucketKeyExpected, []byte(desc.Digest)); err != nil {
				return fmt.Errorf("ingest %q: write expected: %w", wopts.Ref, err)
			}
			return nil
		}
		if err := bkt.Delete(bucketKeyExpected); err != nil {
			return fmt.Errorf("ingest %q: clear expected: %w", wopts.Ref, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if exists {
		return nil, fmt.Errorf("content %v: %w", desc.Digest, errdefs.ErrAlreadyExists)
	}
	// The backing writer is opened once the record is committed, outside
	// the transaction, which may run more than once (see DB.Update). If it
	// cannot be opened (its ref is locked by another writer, say), the
	// record stays as an ingest not yet written to: that is what it is,
	// and its lease or expiry ends it. l, held, keeps a collection from
	// taking it meanwhile. The backing store is not told the digest: it
	// is this namespace's commit that must check it, not another's blob.
	var w content.Writer
	if !shared {
		bdesc := desc
		bdesc.Digest = ""
		if w, err = cs.backing.Writer(ctx, content.WithRef(bref), content.WithDescriptor(bdesc)); err != nil {
			return nil, fmt.Errorf("ingest %q: %w", wopts.Ref, err)
		}
	}
	return &namespacedWriter{
		ctx:     ctx,
		cs:      cs,
		ns:      ns,
		ref:     wopts.Ref,
		bref:    bref,
		w:       w,
		desc:    desc,
		started: time.Now(),
	}, nil
}

// ensureBackingRef returns the backing store's ref for the ingest in bkt,
// making one on first use. It is containerd's "<ns>/<seq>/<ref>": unique
// across namespaces, and across ingests that reuse a ref after an abort.
func ensureBackingRef(bkt *bolt.Bucket, ns, ref string) (string, error) {
	if b := bkt.Get(bucketKeyRef); len(b) > 0 {
		return string(b), nil
	}
	seq, err := bkt.NextSequence()
	if err != nil {
		return "", fmt.Errorf("ingest %q: %w", ref, err)
	}
	bref := fmt.Sprintf("%s/%d/%s", ns, seq, ref)
	if err := bkt.Put(bucketKeyRef, []byte(bref)); err != nil {
		return "", fmt.Errorf("ingest %q: write ref: %w", ref, err)
	}
	return bref, nil
}

func backingRef(tx *bolt.Tx, ns, ref string) string {
	bkt := getIngestBucket(tx, ns, ref)
	if bkt == nil {
		return ""
	}
	return string(bkt.Get(bucketKeyRef))
}

// addIngestLease adds the ingest to the context's lease, if there is one,
// and reports whether there was.
func addIngestLease(ctx context.Context, tx *bolt.Tx, ns, ref string) (bool, error) {
	if _, ok := leaseFromContext(ctx); !ok {
		return false, nil
	}
	return true, addLeaseResource(ctx, tx, ns, bucketKeyObjectIngests, ref)
}

func readInfo(info *content.Info, bkt *bolt.Bucket) error {
	if err := readTimestamps(bkt, &info.CreatedAt, &info.UpdatedAt); err != nil {
		return fmt.Errorf("content %v: %w", info.Digest, err)
	}
	labels, err := readMap(bkt, bucketKeyObjectLabels)
	if err != nil {
		return fmt.Errorf("content %v: %w", info.Digest, err)
	}
	info.Labels = labels
	info.Size = readInt(bkt, bucketKeySize)
	return nil
}

func writeInfo(info *content.Info, bkt *bolt.Bucket) error {
	if err := writeTimestamps(bkt, info.CreatedAt, info.UpdatedAt); err != nil {
		return fmt.Errorf("content %v: %w", info.Digest, err)
	}
	if err := writeMap(bkt, bucketKeyObjectLabels, info.Labels); err != nil {
		return fmt.Errorf("content %v: %w", info.Digest, err)
	}
	if err := writeInt(bkt, bucketKeySize, info.Size); err != nil {
		return fmt.Errorf("content %v: %w", info.Digest, err)
	}
	return nil
}

func adaptStatus(st content.Status) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 1 && fieldpath[0] == "ref" {
			return st.Ref, true
		}
		return "", false
	})
}

// namespacedWriter writes one namespace's ingest. w is the backing
// store's writer, nil while the ingest shares an existing blob.
type namespacedWriter struct {
	ctx  context.Context // the Writer call's, for opening w later
	cs   *contentStore
	ns   string
	ref  string
	bref string

	w       content.Writer
	desc    ocispec.Descriptor
	started time.Time
}

// Write starts a real ingest on the first data written to a shared one:
// the existing blob is copied in first, since Status reported it as
// already written.
func (nw *namespacedWriter) Write(p []byte) (int, error) {
	return nw.WriteReceived(p, time.Time{})
}

// WriteReceived writes p as received at that time, where the backing
// writer can be told so.
func (nw *namespacedWriter) WriteReceived(p []byte, received time.Time) (int, error) {
	if nw.w == nil {
		if len(p) == 0 {
			return 0, nil
		}
		if err := nw.unshare(nw.desc.Size); err != nil {
			return 0, err
		}
	}
	return content.WriteReceived(nw.w, p, received)
}

// WriteVector writes pieces as received at that time, in one call where
// the backing writer takes them so (see content.VectorWriter).
func (nw *namespacedWriter) WriteVector(pieces [][]byte, received time.Time) (int64, error) {
	if nw.w == nil {
		size := 0
		for _, p := range pieces {
			size += len(p)
		}
		if size == 0 {
			return 0, nil
		}
		if err := nw.unshare(nw.desc.Size); err != nil {
			return 0, err
		}
	}
	return content.WriteVector(nw.w, pieces, received)
}

func (nw *namespacedWriter) Truncate(size int64) error {
	if nw.w == nil {
		return nw.unshare(size)
	}
	return nw.w.Truncate(size)
}

// unshare opens the backing writer and copies the first n bytes of the
// shared blob into it.
func (nw *namespacedWriter) unshare(n int64) error {
	bdesc := nw.desc
	bdesc.Digest = ""
	w, err := nw.cs.backing.Writer(nw.ctx, content.WithRef(nw.bref), content.WithDescriptor(bdesc))
	if err != nil {
		return fmt.Errorf("ingest %q: %w", nw.ref, err)
	}
	if err := w.Truncate(0); err != nil {
		w.Close()
		return fmt.Errorf("ingest %q: %w", nw.ref, err)
	}
	if n > 0 {
		if err := copyBlob(nw.ctx, w, nw.cs.backing, nw.desc, n); err != nil {
			w.Close()
			return fmt.Errorf("ingest %q: copy shared blob: %w", nw.ref, err)
		}
	}
	nw.w = w
	return nil
}

func (nw *namespacedWriter) Close() error {
	if nw.w == nil {
		return nil
	}
	return nw.w.Close()
}

func (nw *namespacedWriter) Digest() digest.Digest {
	if nw.w == nil {
		return nw.desc.Digest
	}
	return nw.w.Digest()
}

func (nw *namespacedWriter) Status() (content.Status, error) {
	if nw.w == nil {
		return content.Status{
			Ref:       nw.ref,
			Offset:    nw.desc.Size,
			Total:     nw.desc.Size,
			Expected:  nw.desc.Digest,
			StartedAt: nw.started,
			UpdatedAt: nw.started,
		}, nil
	}
	st, err := nw.w.Status()
	if err != nil {
		return content.Status{}, err
	}
	st.Ref = nw.ref
	return st, nil
}

// Commit makes the blob the namespace's, checking size and expected, and
// moves it from the ingest to the blob in the context's lease. If the
// namespace already had the blob the ingest is still cleared, and the
// result is AlreadyExists.
func (nw *namespacedWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	var base content.Info
	for _, opt := range opts {
		if err := opt(&base); err != nil {
			return err
		}
	}
	if err := validateLabels(base.Labels); err != nil {
		return fmt.Errorf("commit %q: %w", nw.ref, err)
	}

	// The data's sync, the slow part of the backing store's commit, is
	// done before the transaction, which would otherwise hold every other
	// writer of the database for it.
	if s, ok := nw.w.(interface{ Sync() error }); ok {
		if err := s.Sync(); err != nil {
			return err
		}
	}

	nw.cs.l.RLock()
	defer nw.cs.l.RUnlock()

	// The backing store commits first, outside the transaction, which may
	// run more than once (see DB.Update); l, held, keeps a collection from
	// sweeping the blob before the record below names it. Should the
	// record then fail, the blob is left to the next collection. A
	// missing lease, which would fail the record, is looked for first.
	if err := nw.cs.db.View(func(tx *bolt.Tx) error { return checkLease(ctx, tx, nw.ns) }); err != nil {
		return err
	}
	dgst, n, err := nw.commitData(ctx, size, expected)
	if err != nil {
		return err
	}

	var exists error
	err = nw.cs.db.Update(func(tx *bolt.Tx) error {
		exists = nil
		if err := checkLease(ctx, tx, nw.ns); err != nil {
			return err
		}
		bkt, err := createBucketIfNotExists(tx, namespacePath(nw.ns, bucketKeyObjectContent, bucketKeyObjectBlob)...)
		if err != nil {
			return err
		}
		bbkt, err := bkt.CreateBucket([]byte(dgst))
		switch {
		case errors.Is(err, bolterrors.ErrBucketExists):
			exists = fmt.Errorf("content %v: %w", dgst, errdefs.ErrAlreadyExists)
		case err != nil:
			return fmt.Errorf("create content %v: %w", dgst, err)
		default:
			now := time.Now().UTC()
			info := content.Info{Digest: dgst, Size: n, CreatedAt: now, UpdatedAt: now, Labels: base.Labels}
			if err := writeInfo(&info, bbkt); err != nil {
				return err
			}
		}

		if ibkt := getIngestsBucket(tx, nw.ns); ibkt != nil {
			if err := ibkt.DeleteBucket([]byte(nw.ref)); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
				return fmt.Errorf("delete ingest %q: %w", nw.ref, err)
			}
		}
		if err := removeLeaseResource(ctx, tx, nw.ns, bucketKeyObjectIngests, nw.ref); err != nil {
			return err
		}
		return addLeaseResource(ctx, tx, nw.ns, bucketKeyObjectContent, string(dgst))
	})
	if err != nil {
		nw.cs.db.markDirty(true)
		return err
	}
	return exists
}

// commitData checks and, unless the ingest is shared, commits the data in
// the backing store, returning the blob's digest and size. The backing
// store having the blob already is fine: another namespace wrote it.
func (nw *namespacedWriter) commitData(ctx context.Context, size int64, expected digest.Digest) (digest.Digest, int64, error) {
	if nw.w == nil {
		if size != 0 && size != nw.desc.Size {
			return "", 0, fmt.Errorf("commit %q: size %d, expected %d: %w", nw.ref, nw.desc.Size, size, errdefs.ErrFailedPrecondition)
		}
		if expected != "" && expected != nw.desc.Digest {
			return "", 0, fmt.Errorf("commit %q: digest %v, expected %v: %w", nw.ref, nw.desc.Digest, expected, errdefs.ErrFailedPrecondition)
		}
		// The ingest kept the blob from collection only while it lived;
		// one collected since (its lease gone, say) may have taken the
		// blob with it. l is held, so the check stays true.
		if _, err := nw.cs.backing.Info(ctx, nw.desc.Digest); err != nil {
			return "", 0, fmt.Errorf("commit %q: shared blob %v: %w", nw.ref, nw.desc.Digest, err)
		}
		return nw.desc.Digest, nw.desc.Size, nil
	}

	st, err := nw.w.Status()
	if err != nil {
		return "", 0, fmt.Errorf("commit %q: %w", nw.ref, err)
	}
	if size != 0 && size != st.Offset {
		return "", 0, fmt.Errorf("commit %q: size %d, expected %d: %w", nw.ref, st.Offset, size, errdefs.ErrFailedPrecondition)
	}
	if err := nw.w.Commit(ctx, st.Offset, expected); err != nil && !errdefs.IsAlreadyExists(err) {
		return "", 0, fmt.Errorf("commit %q: %w", nw.ref, err)
	}
	return nw.w.Digest(), st.Offset, nil
}

// copyBlob writes the first n bytes of the blob desc names to w.
func copyBlob(ctx context.Context, w io.Writer, p content.Provider, desc ocispec.Descriptor, n int64) error {
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		return err
	}
	defer ra.Close()
	copied, err := io.Copy(w, io.NewSectionReader(ra, 0, n))
	if err != nil {
		return err
	}
	if copied != n {
		return fmt.Errorf("blob %v has %d bytes, want %d: %w", desc.Digest, copied, n, io.ErrUnexpectedEOF)
	}
	return nil
}
