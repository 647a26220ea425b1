package metadata

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"google.golang.org/grpc/metadata"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/namespaces"
)

func TestContentNamespaceIsolation(t *testing.T) {
	db, backing := openContentDB(t)
	cs := db.ContentStore()
	a, b := nsContext("a"), nsContext("b")

	data := []byte("shared between namespaces")
	desc := writeBlob(t, a, cs, data, map[string]string{"owner": "a"})

	if !visible(t, a, cs, desc) {
		t.Fatal("blob not visible in the namespace that wrote it")
	}
	if visible(t, b, cs, desc) {
		t.Fatal("blob visible in another namespace before it wrote it")
	}
	if got := walkDigests(t, b, cs); len(got) != 0 {
		t.Fatalf("Walk in b = %v, want nothing", got)
	}
	if _, err := cs.Update(b, content.Info{Digest: desc.Digest}); !errdefs.IsNotFound(err) {
		t.Errorf("Update in b = %v, want NotFound", err)
	}
	if err := cs.Delete(b, desc.Digest); !errdefs.IsNotFound(err) {
		t.Errorf("Delete in b = %v, want NotFound", err)
	}

	// Writing what a already has again in a is AlreadyExists.
	if _, err := cs.Writer(a, content.WithRef("again"), content.WithDescriptor(desc)); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("Writer in a for its own blob = %v, want AlreadyExists", err)
	}

	// In b the writer shares the blob: it is complete at once and the
	// commit needs no data.
	w, err := cs.Writer(b, content.WithRef("take"), content.WithDescriptor(desc))
	if err != nil {
		t.Fatalf("Writer in b: %v", err)
	}
	st, err := w.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Ref != "take" || st.Offset != desc.Size || st.Total != desc.Size || st.Expected != desc.Digest {
		t.Errorf("shared writer status = %+v, want complete at %d", st, desc.Size)
	}
	if err := w.Commit(b, desc.Size, desc.Digest, content.WithLabels(map[string]string{"owner": "b"})); err != nil {
		t.Fatalf("Commit in b: %v", err)
	}
	w.Close()

	for _, ctx := range []context.Context{a, b} {
		if got := walkDigests(t, ctx, cs); !slices.Equal(got, []digest.Digest{desc.Digest}) {
			t.Errorf("Walk = %v, want %v", got, desc.Digest)
		}
		got, err := content.ReadBlob(ctx, cs, desc)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("ReadBlob = %q, %v", got, err)
		}
	}
	// Labels are per namespace.
	for ns, want := range map[string]string{"a": "a", "b": "b"} {
		info, err := cs.Info(nsContext(ns), desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		labelsEqual(t, "namespace "+ns, info.Labels, map[string]string{"owner": want})
		if info.Size != desc.Size {
			t.Errorf("namespace %s size = %d, want %d", ns, info.Size, desc.Size)
		}
	}

	// Deleting in a leaves b's record, and the data, alone.
	if err := cs.Delete(a, desc.Digest); err != nil {
		t.Fatal(err)
	}
	if visible(t, a, cs, desc) || !visible(t, b, cs, desc) {
		t.Error("after delete in a: want invisible in a, visible in b")
	}
	if !inBacking(t, backing, desc.Digest) {
		t.Error("delete in one namespace removed the backing blob")
	}
}

// A client that cannot seek its input truncates a shared ingest and sends
// everything again; that must work too.
func TestContentSharedIngestRewritten(t *testing.T) {
	db, _ := openContentDB(t)
	cs := db.ContentStore()
	data := []byte("sent twice")
	desc := writeBlob(t, nsContext("a"), cs, data, nil)

	b := nsContext("b")
	if err := content.WriteBlob(b, cs, "rewrite", io.MultiReader(bytes.NewReader(data)), desc); err != nil {
		t.Fatalf("WriteBlob with an unseekable reader: %v", err)
	}
	if !visible(t, b, cs, desc) {
		t.Fatal("not visible after rewrite")
	}

	// Writing into a shared ingest without truncating first appends to
	// the copied blob, so the commit sees a different digest.
	c := nsContext("c")
	w, err := cs.Writer(c, content.WithRef("append"), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write([]byte("!")); err != nil {
		t.Fatal(err)
	}
	if st, _ := w.Status(); st.Offset != desc.Size+1 {
		t.Errorf("offset after append = %d, want %d", st.Offset, desc.Size+1)
	}
	if err := w.Commit(c, 0, desc.Digest); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Commit of appended data = %v, want FailedPrecondition", err)
	}
	if visible(t, c, cs, desc) {
		t.Error("failed commit made the blob visible")
	}
}

func TestContentCommitChecks(t *testing.T) {
	db, _ := openContentDB(t)
	cs := db.ContentStore()
	ctx := nsContext("ns")
	data := []byte("checked")
	desc := descOf(data)

	open := func(ref string) content.Writer {
		t.Helper()
		w, err := cs.Writer(ctx, content.WithRef(ref))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		return w
	}

	w := open("bad-digest")
	err := w.Commit(ctx, desc.Size, digest.FromString("other"))
	assertErr(t, "Commit with the wrong digest", err, errdefs.IsFailedPrecondition, "FailedPrecondition")
	w.Close()
	if _, err := cs.Status(ctx, "bad-digest"); err != nil {
		t.Errorf("ingest gone after failed commit: %v", err)
	}

	w = open("bad-size")
	err = w.Commit(ctx, desc.Size+1, "")
	assertErr(t, "Commit with the wrong size", err, errdefs.IsFailedPrecondition, "FailedPrecondition")
	w.Close()

	w = open("bad-label")
	err = w.Commit(ctx, desc.Size, desc.Digest, content.WithLabels(map[string]string{"k": strings.Repeat("v", 5000)}))
	assertErr(t, "Commit with an oversized label", err, errdefs.IsInvalidArgument, "InvalidArgument")
	w.Close()

	if visible(t, ctx, cs, desc) {
		t.Fatal("a failed commit made the blob visible")
	}

	if _, err := cs.Writer(ctx); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Writer without ref = %v, want InvalidArgument", err)
	}
	if _, err := cs.Writer(ctx, content.WithRef("x"), content.WithDescriptor(descOf(nil)), func(o *content.WriterOpts) error {
		o.Desc.Digest = "sha256:nothex"
		return nil
	}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Writer with a malformed digest = %v, want InvalidArgument", err)
	}
	if _, err := cs.Info(context.Background(), desc.Digest); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Info without namespace = %v, want FailedPrecondition", err)
	}

	// The failed ingests commit fine once the data is right.
	w, err = cs.Writer(ctx, content.WithRef("bad-size"))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := w.Status(); st.Offset != desc.Size {
		t.Fatalf("resumed at %d, want %d", st.Offset, desc.Size)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
	if !visible(t, ctx, cs, desc) {
		t.Fatal("not visible after commit")
	}
	// Committing the same blob through another ingest is AlreadyExists,
	// and still clears that ingest.
	w = open("dup")
	if err := w.Commit(ctx, desc.Size, desc.Digest); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second commit = %v, want AlreadyExists", err)
	}
	if _, err := cs.Status(ctx, "dup"); !errdefs.IsNotFound(err) {
		t.Errorf("Status of committed ingest = %v, want NotFound", err)
	}
}

func TestContentUpdateAndWalk(t *testing.T) {
	db, _ := openContentDB(t)
	cs := db.ContentStore()
	ctx := nsContext("ns")
	d1 := writeBlob(t, ctx, cs, []byte("one"), map[string]string{"a": "1", "b": "1"})
	d2 := writeBlob(t, ctx, cs, []byte("two"), map[string]string{"a": "2"})

	if got := walkDigests(t, ctx, cs, "labels.a==2"); !slices.Equal(got, []digest.Digest{d2.Digest}) {
		t.Errorf("Walk labels.a==2 = %v", got)
	}
	if got := walkDigests(t, ctx, cs, "labels.b", "digest=="+d2.Digest.String()); len(got) != 2 {
		t.Errorf("Walk with two filters = %v, want both", got)
	}
	if err := cs.Walk(ctx, func(content.Info) error { return nil }, "labels.a=="); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Walk with a bad filter = %v, want InvalidArgument", err)
	}

	before, _ := cs.Info(ctx, d1.Digest)
	info, err := cs.Update(ctx, content.Info{Digest: d1.Digest, Labels: map[string]string{"b": "", "c": "3"}}, "labels.b", "labels.c")
	if err != nil {
		t.Fatal(err)
	}
	labelsEqual(t, "after labels.b, labels.c", info.Labels, map[string]string{"a": "1", "c": "3"})
	if !info.UpdatedAt.After(before.UpdatedAt) || !info.CreatedAt.Equal(before.CreatedAt) {
		t.Errorf("times: created %v→%v, updated %v→%v", before.CreatedAt, info.CreatedAt, before.UpdatedAt, info.UpdatedAt)
	}
	got, _ := cs.Info(ctx, d1.Digest)
	labelsEqual(t, "stored", got.Labels, info.Labels)

	info, err = cs.Update(ctx, content.Info{Digest: d1.Digest, Labels: map[string]string{"z": "9"}})
	if err != nil {
		t.Fatal(err)
	}
	labelsEqual(t, "after full update", info.Labels, map[string]string{"z": "9"})

	_, err = cs.Update(ctx, content.Info{Digest: d1.Digest}, "size")
	assertErr(t, "Update of size", err, errdefs.IsInvalidArgument, "InvalidArgument")
	_, err = cs.Update(ctx, content.Info{Digest: d1.Digest, Labels: map[string]string{"": "x"}})
	assertErr(t, "Update with an empty key", err, errdefs.IsInvalidArgument, "InvalidArgument")
	_, err = cs.Update(ctx, content.Info{Digest: digest.FromString("absent")})
	assertErr(t, "Update of a missing blob", err, errdefs.IsNotFound, "NotFound")
}

func TestContentIngestsPerNamespace(t *testing.T) {
	db, backing := openContentDB(t)
	cs := db.ContentStore()
	a, b := nsContext("a"), nsContext("b")

	wa, err := cs.Writer(a, content.WithRef("same"))
	if err != nil {
		t.Fatal(err)
	}
	defer wa.Close()
	wb, err := cs.Writer(b, content.WithRef("same"))
	if err != nil {
		t.Fatalf("same ref in another namespace: %v", err)
	}
	defer wb.Close()
	if _, err := cs.Writer(a, content.WithRef("same")); !errdefs.IsUnavailable(err) {
		t.Errorf("second writer of a ref = %v, want Unavailable", err)
	}
	wa.Write([]byte("aaaa"))
	wb.Write([]byte("bb"))

	for ctx, want := range map[context.Context]int64{a: 4, b: 2} {
		st, err := cs.Status(ctx, "same")
		if err != nil || st.Ref != "same" || st.Offset != want {
			t.Errorf("Status = %+v, %v; want ref same at %d", st, err, want)
		}
		sts, err := cs.ListStatuses(ctx, "ref==same")
		if err != nil || len(sts) != 1 || sts[0].Offset != want {
			t.Errorf("ListStatuses = %+v, %v", sts, err)
		}
	}
	if _, err := cs.Status(nsContext("c"), "same"); !errdefs.IsNotFound(err) {
		t.Errorf("Status in a third namespace = %v, want NotFound", err)
	}

	wb.Close()
	if err := cs.Abort(b, "same"); err != nil {
		t.Fatal(err)
	}
	if err := cs.Abort(b, "same"); !errdefs.IsNotFound(err) {
		t.Errorf("second Abort = %v, want NotFound", err)
	}
	if _, err := cs.Status(a, "same"); err != nil {
		t.Errorf("Abort in b touched a: %v", err)
	}
	if sts, _ := backing.ListStatuses(context.Background()); len(sts) != 1 {
		t.Errorf("backing ingests after abort = %+v, want a's only", sts)
	}
}

func TestContentLease(t *testing.T) {
	db, _ := openContentDB(t)
	cs := db.ContentStore()
	lm := NewLeaseManager(db)
	ctx := nsContext("ns")
	l := createLease(t, ctx, lm, leases.WithID("pull"))

	// The lease arrives as gRPC metadata, the way the services see it.
	lctx := metadata.NewIncomingContext(ctx, metadata.Pairs(leases.GRPCHeader, l.ID))

	data := []byte("leased")
	desc := descOf(data)
	w, err := cs.Writer(lctx, content.WithRef("r"), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	assertResources(t, ctx, lm, l, leases.Resource{ID: "r", Type: "ingests"})
	w.Write(data)
	if err := w.Commit(lctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
	w.Close()
	assertResources(t, ctx, lm, l, leases.Resource{ID: desc.Digest.String(), Type: "content"})

	// Asking to write it again under a second lease adds it there too.
	l2 := createLease(t, ctx, lm)
	if _, err := cs.Writer(leases.WithLease(ctx, l2.ID), content.WithRef("again"), content.WithDescriptor(desc)); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("Writer = %v, want AlreadyExists", err)
	}
	assertResources(t, ctx, lm, l2, leases.Resource{ID: desc.Digest.String(), Type: "content"})

	// Deleting under the lease drops it from the lease as well.
	if err := cs.Delete(leases.WithLease(ctx, l.ID), desc.Digest); err != nil {
		t.Fatal(err)
	}
	assertResources(t, ctx, lm, l)

	missing := leases.WithLease(ctx, "missing")
	if _, err := cs.Writer(missing, content.WithRef("m")); !errdefs.IsNotFound(err) {
		t.Errorf("Writer under a missing lease = %v, want NotFound", err)
	}
	w, err = cs.Writer(ctx, content.WithRef("m"))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("m"))
	if err := w.Commit(missing, 1, ""); !errdefs.IsNotFound(err) {
		t.Errorf("Commit under a missing lease = %v, want NotFound", err)
	}
	w.Close()
	if _, err := cs.Status(ctx, "m"); err != nil {
		t.Errorf("ingest lost by a refused commit: %v", err)
	}
}

func assertResources(t *testing.T, ctx context.Context, lm leases.Manager, l leases.Lease, want ...leases.Resource) {
	t.Helper()
	got, err := lm.ListResources(ctx, l)
	if err != nil {
		t.Fatalf("ListResources(%s): %v", l.ID, err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("resources of %s = %v, want %v", l.ID, got, want)
	}
}

// Namespace deletion must see the records these stores make.
func TestNamespaceDeleteSeesStores(t *testing.T) {
	db, _ := openContentDB(t)
	ctx := nsContext("busy")
	desc := writeBlob(t, ctx, db.ContentStore(), []byte("x"), nil)
	createLease(t, ctx, NewLeaseManager(db), leases.WithID("l"))
	if _, err := NewImageStore(db).Create(ctx, testImage("img", desc)); err != nil {
		t.Fatal(err)
	}
	err := update(db, func(s namespaces.Store) error { return s.Delete(context.Background(), "busy") })
	want := "still has images, blobs, leases"
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Delete = %v, want FailedPrecondition naming %q", err, want)
	}
}
