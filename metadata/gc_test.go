package metadata

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/gc"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/leases"
)

// openIngest starts an ingest and writes part of data to it.
func openIngest(t *testing.T, ctx context.Context, cs content.Store, ref string, data []byte) {
	t.Helper()
	w, err := cs.Writer(ctx, content.WithRef(ref), content.WithDescriptor(descOf(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[:len(data)/2]); err != nil {
		t.Fatal(err)
	}
	w.Close()
}

func ingestExists(t *testing.T, ctx context.Context, cs content.Store, ref string) bool {
	t.Helper()
	_, err := cs.Status(ctx, ref)
	if err != nil && !errdefs.IsNotFound(err) {
		t.Fatalf("Status(%q): %v", ref, err)
	}
	return err == nil
}

func collect(t *testing.T, db *DB) gc.Stats {
	t.Helper()
	stats, err := db.GarbageCollect(context.Background())
	if err != nil {
		t.Fatalf("GarbageCollect: %v", err)
	}
	return stats
}

func TestGarbageCollect(t *testing.T) {
	db, backing := openContentDB(t)
	cs := db.ContentStore()
	lm := NewLeaseManager(db)
	is := NewImageStore(db)
	ctx := nsContext("default")

	// An image: index → manifest → config and layers, linked by labels.
	config := writeBlob(t, ctx, cs, []byte("config"), nil)
	layer0 := writeBlob(t, ctx, cs, []byte("layer 0"), nil)
	layer1 := writeBlob(t, ctx, cs, []byte("layer 1"), nil)
	manifest := writeBlob(t, ctx, cs, []byte("manifest"), map[string]string{
		"containerd.io/gc.ref.content.config":  config.Digest.String(),
		"containerd.io/gc.ref.content.l.0":     layer0.Digest.String(),
		"containerd.io/gc.ref.content.l/1":     layer1.Digest.String(),
		"containerd.io/gc.ref.contentious":     "not a reference",
		"containerd.io/gc.ref.snapshot.native": "sha256:chain",
	})
	index := writeBlob(t, ctx, cs, []byte("index"), map[string]string{
		"containerd.io/gc.ref.content.m.0": manifest.Digest.String(),
	})
	extra := writeBlob(t, ctx, cs, []byte("referenced by an image label"), nil)
	img := testImage("docker.io/library/app:latest", index)
	img.Labels = map[string]string{"containerd.io/gc.ref.content.extra": extra.Digest.String()}
	if _, err := is.Create(ctx, img); err != nil {
		t.Fatal(err)
	}

	unreferenced := writeBlob(t, ctx, cs, []byte("unreferenced"), nil)
	lookalike := writeBlob(t, ctx, cs, []byte("named by a lookalike label"), nil)
	if _, err := cs.Update(ctx, content.Info{Digest: manifest.Digest, Labels: map[string]string{
		"containerd.io/gc.ref.contentious": lookalike.Digest.String(),
	}}, "labels.containerd.io/gc.ref.contentious"); err != nil {
		t.Fatal(err)
	}
	root := writeBlob(t, ctx, cs, []byte("root"), map[string]string{"containerd.io/gc.root": "yes"})

	keep := createLease(t, ctx, lm, leases.WithID("keep"), leases.WithExpiration(time.Hour))
	leased := writeBlob(t, leases.WithLease(ctx, keep.ID), cs, []byte("leased"), nil)
	flat := createLease(t, ctx, lm, leases.WithID("flat"), leases.WithLabels(map[string]string{"containerd.io/gc.flat": "1"}))
	flatChild := writeBlob(t, ctx, cs, []byte("child of a flat-leased blob"), nil)
	flatParent := writeBlob(t, leases.WithLease(ctx, flat.ID), cs, []byte("flat-leased"), map[string]string{
		"containerd.io/gc.ref.content": flatChild.Digest.String(),
	})
	old := createLease(t, ctx, lm, leases.WithID("old"), leases.WithExpiration(-time.Minute))
	expired := writeBlob(t, leases.WithLease(ctx, old.ID), cs, []byte("under an expired lease"), nil)
	bad := createLease(t, ctx, lm, leases.WithID("bad-expiry"), leases.WithLabels(map[string]string{leases.LabelExpire: "tomorrow"}))
	badExpiry := writeBlob(t, leases.WithLease(ctx, bad.ID), cs, []byte("lease expiry unreadable"), nil)

	// Ingests: one fresh, one stale, one whose lease goes away.
	openIngest(t, ctx, cs, "fresh", []byte("fresh ingest data"))
	openIngest(t, ctx, cs, "stale", []byte("stale ingest data"))
	if err := db.Update(func(tx *bolt.Tx) error {
		return writeTime(getIngestBucket(tx, "default", "stale"), bucketKeyExpireAt, time.Now().Add(-time.Second))
	}); err != nil {
		t.Fatal(err)
	}
	gone := createLease(t, ctx, lm, leases.WithID("gone"))
	openIngest(t, leases.WithLease(ctx, gone.ID), cs, "orphan", []byte("orphaned ingest data"))
	if err := lm.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}

	// Another namespace holds a layer nothing there refers to, and is
	// taking over the manifest through a shared ingest.
	other := nsContext("other")
	writeBlob(t, other, cs, []byte("layer 0"), nil)
	w, err := cs.Writer(other, content.WithRef("take-manifest"), content.WithDescriptor(manifest))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	stats := collect(t, db)
	if stats.MetaD <= 0 || stats.ContentD <= 0 || stats.Elapsed() != stats.MetaD {
		t.Errorf("stats = %+v", stats)
	}

	for name, tt := range map[string]struct {
		desc ocispec.Descriptor
		keep bool
	}{
		"index":         {index, true},
		"manifest":      {manifest, true},
		"config":        {config, true},
		"layer0":        {layer0, true},
		"layer1":        {layer1, true},
		"extra":         {extra, true},
		"root":          {root, true},
		"leased":        {leased, true},
		"flatParent":    {flatParent, true},
		"badExpiry":     {badExpiry, true},
		"unreferenced":  {unreferenced, false},
		"lookalike":     {lookalike, false},
		"flatChild":     {flatChild, false},
		"expired lease": {expired, false},
	} {
		if got := visible(t, ctx, cs, tt.desc); got != tt.keep {
			t.Errorf("%s: visible = %v, want %v", name, got, tt.keep)
		}
		if got := inBacking(t, backing, tt.desc.Digest); got != tt.keep {
			t.Errorf("%s: in backing store = %v, want %v", name, got, tt.keep)
		}
	}
	if visible(t, other, cs, layer0) {
		t.Error("unreferenced record in namespace other survived")
	}
	for ref, want := range map[string]bool{"fresh": true, "stale": false, "orphan": false} {
		if got := ingestExists(t, ctx, cs, ref); got != want {
			t.Errorf("ingest %s exists = %v, want %v", ref, got, want)
		}
	}
	if sts, _ := backing.ListStatuses(context.Background()); len(sts) != 1 {
		t.Errorf("backing ingests = %+v, want only the fresh one", sts)
	}
	ls, _ := lm.List(ctx)
	if ids := leaseIDs(ls); fmt.Sprint(ids) != "[bad-expiry flat keep]" {
		t.Errorf("leases after collection = %v, want the expired one gone", ids)
	}

	// With the image gone, its tree goes too, except the manifest that
	// other is still taking over.
	if err := is.Delete(ctx, img.Name, images.SynchronousDelete()); err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct {
		desc    ocispec.Descriptor
		backing bool
	}{
		"index":    {index, false},
		"manifest": {manifest, true},
		"config":   {config, false},
		"layer0":   {layer0, false},
		"layer1":   {layer1, false},
		"extra":    {extra, false},
		"root":     {root, true},
	} {
		if got := visible(t, ctx, cs, tt.desc); got != (name == "root") {
			t.Errorf("after image delete, %s: visible = %v", name, got)
		}
		if got := inBacking(t, backing, tt.desc.Digest); got != tt.backing {
			t.Errorf("after image delete, %s: in backing store = %v, want %v", name, got, tt.backing)
		}
	}
	if err := w.Commit(other, manifest.Size, manifest.Digest); err != nil {
		t.Fatalf("commit of the shared ingest after its source went: %v", err)
	}
	if got, err := content.ReadBlob(other, cs, manifest); err != nil || string(got) != "manifest" {
		t.Errorf("ReadBlob in other = %q, %v", got, err)
	}

	// Releasing the lease with a synchronous delete frees its blob.
	if err := lm.Delete(ctx, keep, leases.SynchronousDelete); err != nil {
		t.Fatal(err)
	}
	if inBacking(t, backing, leased.Digest) {
		t.Error("blob of a deleted lease survived a synchronous delete")
	}
	if db.dirty.Load() != 0 || db.dirtyContent.Load() {
		t.Error("collection left the database dirty")
	}

	// A collection with nothing to delete commits nothing: every commit
	// costs bolt a sync, and one runs after each deletion.
	txid := func() (id int) {
		db.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
		return id
	}
	before := txid()
	collect(t, db)
	if after := txid(); after != before {
		t.Errorf("collection with nothing to sweep committed: txid %d -> %d", before, after)
	}
}

// A blob committed under a lease while collections run back to back must
// never be lost, however the commit and the collection interleave.
func TestGarbageCollectConcurrentCommits(t *testing.T) {
	db, backing := openContentDB(t)
	cs := db.ContentStore()
	ctx := nsContext("ns")
	l := createLease(t, ctx, NewLeaseManager(db), leases.WithID("writers"))
	lctx := leases.WithLease(ctx, l.ID)

	stop := make(chan struct{})
	var collections atomic.Int32
	var gcErr error
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// An unleased blob deleted at once keeps the backing store
			// dirty, so that every collection cleans it.
			junk := []byte(fmt.Sprintf("junk %d", i))
			if err := content.WriteBlob(ctx, cs, fmt.Sprintf("junk-%d", i), bytes.NewReader(junk), descOf(junk)); err != nil {
				gcErr = err
				return
			}
			if err := cs.Delete(ctx, descOf(junk).Digest); err != nil {
				gcErr = err
				return
			}
			if _, err := db.GarbageCollect(context.Background()); err != nil {
				gcErr = err
				return
			}
			collections.Add(1)
		}
	}()

	const writers, blobs = 8, 25
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		descs []ocispec.Descriptor
		errs  = make(chan error, writers)
	)
	for i := range writers {
		wg.Go(func() {
			for j := range blobs {
				data := []byte(fmt.Sprintf("writer %d blob %d", i, j))
				// Half are kept by the lease, half by a root label.
				wctx, labels := lctx, map[string]string(nil)
				if j%2 == 1 {
					wctx, labels = ctx, map[string]string{"containerd.io/gc.root": "1"}
				}
				desc := descOf(data)
				if err := content.WriteBlob(wctx, cs, fmt.Sprintf("w%d-%d", i, j), bytes.NewReader(data), desc, content.WithLabels(labels)); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				descs = append(descs, desc)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	<-gcDone
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if gcErr != nil {
		t.Fatal(gcErr)
	}
	collect(t, db)
	if collections.Load() < 2 {
		t.Logf("only %d collections overlapped the writes", collections.Load())
	}

	for _, desc := range descs {
		if !visible(t, ctx, cs, desc) || !inBacking(t, backing, desc.Digest) {
			t.Errorf("committed blob %v lost", desc.Digest)
		}
	}
}

type fakeScheduler struct{ calls atomic.Int32 }

func (s *fakeScheduler) ScheduleAndWait(context.Context) (gc.Stats, error) {
	s.calls.Add(1)
	return gc.Stats{}, nil
}

func TestSynchronousDeleteUsesScheduler(t *testing.T) {
	db, _ := openTestDB(t)
	var s fakeScheduler
	db.SetScheduler(&s)
	ctx := nsContext("ns")

	lm := NewLeaseManager(db)
	l := createLease(t, ctx, lm)
	if err := lm.Delete(ctx, l, leases.SynchronousDelete); err != nil {
		t.Fatal(err)
	}
	is := NewImageStore(db)
	target := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: descOf([]byte("m")).Digest, Size: 1}
	for _, sync := range []bool{false, true} {
		if _, err := is.Create(ctx, images.Image{Name: "img", Target: target}); err != nil {
			t.Fatal(err)
		}
		var opts []images.DeleteOpt
		if sync {
			opts = append(opts, images.SynchronousDelete())
		}
		if err := is.Delete(ctx, "img", opts...); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.calls.Load(); n != 2 {
		t.Errorf("scheduler called %d times, want 2", n)
	}
}

func TestMutationCallbacks(t *testing.T) {
	db, _ := openTestDB(t)
	var calls []bool
	db.RegisterMutationCallback(func(dirty bool) { calls = append(calls, dirty) })
	ctx := nsContext("ns")
	lm := NewLeaseManager(db)
	l := createLease(t, ctx, lm)
	if _, err := lm.Create(ctx, leases.WithID(l.ID)); err == nil {
		t.Fatal("duplicate lease created")
	}
	if err := lm.Delete(ctx, l); err != nil {
		t.Fatal(err)
	}
	createLease(t, ctx, lm)
	collect(t, db)
	createLease(t, ctx, lm)
	// Failed updates are not mutations; after a delete every mutation is
	// dirty until a collection.
	if want := []bool{false, true, true, false}; fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Errorf("callbacks = %v, want %v", calls, want)
	}
}

// A container is a root of the collection. Its snapshotter and snapshot
// key fields keep its snapshot, with the snapshot's parents; its gc.ref
// labels keep the content and snapshots they name; its image name keeps
// nothing, as in containerd: what a container needs of its image it
// names in labels. Deleting the container lets all of it go.
func TestContainerGarbageCollect(t *testing.T) {
	db, backing := openSnapshotDB(t, "naive")
	sn := db.Snapshotter("naive")
	cs := db.ContentStore()
	is := NewImageStore(db)
	store := NewContainerStore(db)
	ctx := nsContext("default")

	// An image: its manifest and config, and its unpacked layers, which
	// the config names as containerd's unpacker does.
	commitLayer(t, ctx, sn, "layer1", "", map[string]string{"a": "1"})
	commitLayer(t, ctx, sn, "layer2", "layer1", map[string]string{"b": "2"})
	config := writeBlob(t, ctx, cs, []byte("config"), map[string]string{
		"containerd.io/gc.ref.snapshot.naive": "layer2",
	})
	manifest := writeBlob(t, ctx, cs, []byte("manifest"), map[string]string{
		"containerd.io/gc.ref.content.config": config.Digest.String(),
	})
	img := testImage("docker.io/library/app:latest", manifest)
	if _, err := is.Create(ctx, img); err != nil {
		t.Fatal(err)
	}

	// c1 runs on a writable layer over the image's top layer, keeps the
	// image's config through a label (and through it the layers), a
	// volume snapshot and a blob of its own.
	if _, err := sn.Prepare(ctx, "c1-rootfs", "layer2"); err != nil {
		t.Fatal(err)
	}
	commitLayer(t, ctx, sn, "vol", "", map[string]string{"v": "1"})
	own := writeBlob(t, ctx, cs, []byte("c1's own blob"), nil)
	c1 := testContainer("c1")
	c1.Image = img.Name
	c1.Snapshotter, c1.SnapshotKey = "naive", "c1-rootfs"
	c1.Labels = map[string]string{
		"containerd.io/gc.ref.content.image":     config.Digest.String(),
		"containerd.io/gc.ref.content/own":       own.Digest.String(),
		"containerd.io/gc.ref.snapshot.naive/vl": "vol",
		"unrelated":                              "x",
	}
	// c2 names a snapshotter but no snapshot, which containers may: it
	// keeps no snapshot (the collector looks up an empty key, which no
	// record has), and the collection must not trip over it.
	c2 := testContainer("c2")
	c2.Snapshotter = "naive"
	// c3's snapshot key holds a '/', as keys may; the collector's node key
	// "<snapshotter>/<key>" is split at the first one.
	if _, err := sn.Prepare(ctx, "k8s.io/c3/rootfs", "layer1"); err != nil {
		t.Fatal(err)
	}
	c3 := testContainer("c3")
	c3.Snapshotter, c3.SnapshotKey = "naive", "k8s.io/c3/rootfs"
	for _, c := range []containers.Container{c1, c2, c3} {
		if _, err := store.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	// What nothing refers to.
	if _, err := sn.Prepare(ctx, "stray", "layer1"); err != nil {
		t.Fatal(err)
	}
	stray := writeBlob(t, ctx, cs, []byte("stray"), nil)

	check := func(when string, keepSnaps, goneSnaps []string, keepBlobs, goneBlobs []ocispec.Descriptor) {
		t.Helper()
		var bkeys []string
		for _, k := range keepSnaps {
			bkeys = append(bkeys, backingKeyOf(t, db, "default", "naive", k))
		}
		slices.Sort(bkeys)
		collect(t, db)
		for _, k := range keepSnaps {
			if _, err := sn.Stat(ctx, k); err != nil {
				t.Errorf("%s: snapshot %s collected: %v", when, k, err)
			}
		}
		for _, k := range goneSnaps {
			if _, err := sn.Stat(ctx, k); !errdefs.IsNotFound(err) {
				t.Errorf("%s: snapshot %s kept: %v", when, k, err)
			}
		}
		if got := backingKeys(t, backing); !slices.Equal(got, bkeys) {
			t.Errorf("%s: backing snapshots %q, want %q", when, got, bkeys)
		}
		for _, d := range keepBlobs {
			if !visible(t, ctx, cs, d) || !inBacking(t, db.cs.backing, d.Digest) {
				t.Errorf("%s: blob %s collected", when, d.Digest)
			}
		}
		for _, d := range goneBlobs {
			if visible(t, ctx, cs, d) || inBacking(t, db.cs.backing, d.Digest) {
				t.Errorf("%s: blob %s kept", when, d.Digest)
			}
		}
	}

	check("with the image and containers",
		[]string{"layer1", "layer2", "c1-rootfs", "vol", "k8s.io/c3/rootfs"}, []string{"stray"},
		[]ocispec.Descriptor{manifest, config, own}, []ocispec.Descriptor{stray})

	// Without the image, c1's labels still keep the config, and so the
	// layers; the manifest only the image named goes.
	if err := is.Delete(ctx, img.Name); err != nil {
		t.Fatal(err)
	}
	check("after the image is deleted",
		[]string{"layer1", "layer2", "c1-rootfs", "vol", "k8s.io/c3/rootfs"}, nil,
		[]ocispec.Descriptor{config, own}, []ocispec.Descriptor{manifest})

	// Without c1, everything only it kept goes; c3 still keeps layer1.
	if err := store.Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if db.dirty.Load() == 0 {
		t.Error("deleting a container leaves no work for the collector")
	}
	check("after c1 is deleted",
		[]string{"layer1", "k8s.io/c3/rootfs"}, []string{"layer2", "c1-rootfs", "vol"},
		nil, []ocispec.Descriptor{config, own})

	for _, id := range []string{"c2", "c3"} {
		if err := store.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	check("after every container is deleted", nil, []string{"layer1", "k8s.io/c3/rootfs"}, nil, nil)
}

// walkHook is a backing store that runs after, once, when a walk of it
// has listed its blobs.
type walkHook struct {
	content.Store
	after func()
}

func (w *walkHook) Walk(ctx context.Context, fn content.WalkFunc, fs ...string) error {
	err := w.Store.Walk(ctx, fn, fs...)
	if after := w.after; after != nil {
		w.after = nil
		after()
	}
	return err
}

// The content cleanup walks the backing store without holding off
// writers. A blob it found unreferenced, but which a namespace commits
// while it walks, is kept: the candidates are checked again against the
// records before anything is deleted.
func TestContentCleanupKeepsBlobCommittedDuringWalk(t *testing.T) {
	dir := t.TempDir()
	backing, err := local.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	hook := &walkHook{Store: backing}
	db, err := Open(context.Background(), filepath.Join(dir, "meta.db"), hook, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cs := db.ContentStore()

	// Namespace a drops its blob: the backing store keeps it, unnamed.
	data := []byte("taken over while the collector walks")
	desc := writeBlob(t, nsContext("a"), cs, data, nil)
	if err := cs.Delete(nsContext("a"), desc.Digest); err != nil {
		t.Fatal(err)
	}
	// Namespace b commits the same blob while the cleanup walks; it
	// shares the backing blob, so only its record is written.
	hook.after = func() {
		writeBlob(t, nsContext("b"), cs, data, map[string]string{"containerd.io/gc.root": "1"})
	}
	collect(t, db)
	if hook.after != nil {
		t.Fatal("the collection did not walk the backing store")
	}
	if !visible(t, nsContext("b"), cs, desc) || !inBacking(t, backing, desc.Digest) {
		t.Fatal("a blob committed during the cleanup's walk was deleted")
	}
}
