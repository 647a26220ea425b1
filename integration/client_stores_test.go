//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/snapshots"
)

// newClient starts a daemon and connects our client to it, in namespace
// ns by default.
func newClient(t *testing.T, ns string) *client.Client {
	t.Helper()
	d := newDaemon(t, "")
	d.start()
	c, err := client.New(d.Address, client.WithDefaultNamespace(ns), client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// leaseCtx is testCtx under a lease of c's, so that what the test writes
// is not garbage collected under it.
func leaseCtx(t *testing.T, c *client.Client) context.Context {
	t.Helper()
	ctx, done, err := c.WithLease(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { done(context.Background()) })
	return ctx
}

func TestClientConnect(t *testing.T) {
	c := newClient(t, "default")
	ctx := testCtx(t)
	v, err := c.Version(ctx)
	if err != nil || v.Version == "" {
		t.Fatalf("version: %+v, %v", v, err)
	}
	srv, err := c.Server(ctx)
	if err != nil || srv.UUID == "" || srv.Pid == 0 {
		t.Fatalf("server: %+v, %v", srv, err)
	}
	if ok, err := c.IsServing(ctx); !ok || err != nil {
		t.Fatalf("serving: %v, %v", ok, err)
	}

	// Nothing listening: New fails within its timeout, naming the
	// address and why.
	missing := t.TempDir() + "/none.sock"
	start := time.Now()
	_, err = client.New("unix://"+missing, client.WithTimeout(300*time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), `failed to dial "unix://`+missing+`"`) ||
		!strings.Contains(err.Error(), "no such file or directory") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("dial of a missing socket: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("dial took %v", time.Since(start))
	}
}

func TestClientContent(t *testing.T) {
	c := newClient(t, "content-test")
	ctx := leaseCtx(t, c)
	cs := c.ContentStore()

	data := make([]byte, 5<<20+123)
	rand.Read(data)
	dgst := digest.FromBytes(data)
	desc := ocispec.Descriptor{Digest: dgst, Size: int64(len(data))}
	const ref = "client-test-blob"

	// Write the first half, in small pieces, and drop the writer.
	w, err := cs.Writer(ctx, content.WithRef(ref), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	half := len(data) / 2
	for p := data[:half]; len(p) > 0; {
		n := min(len(p), 3000)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	// A second writer of the ref is refused while the first holds it.
	if _, err := cs.Writer(ctx, content.WithRef(ref)); !errdefs.IsUnavailable(err) {
		t.Fatalf("second writer of a locked ref: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := cs.Status(ctx, ref)
	if err != nil || st.Offset != int64(half) || st.Total != desc.Size {
		t.Fatalf("status after close: %+v, %v", st, err)
	}
	if sts, err := cs.ListStatuses(ctx); err != nil || len(sts) != 1 || sts[0].Ref != ref {
		t.Fatalf("statuses: %+v, %v", sts, err)
	}

	// Resume where it stands, through io.Copy (the writer's ReadFrom).
	w, err = cs.Writer(ctx, content.WithRef(ref), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	st, err = w.Status()
	if err != nil || st.Offset != int64(half) {
		t.Fatalf("resumed writer status: %+v, %v", st, err)
	}
	if _, err := io.Copy(w, bytes.NewReader(data[st.Offset:])); err != nil {
		t.Fatal(err)
	}
	if got := w.Digest(); got != dgst {
		t.Fatalf("writer digest %s, want %s", got, dgst)
	}
	labels := map[string]string{"test": "yes"}
	if err := w.Commit(ctx, desc.Size, dgst, content.WithLabels(labels)); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Status(ctx, ref); !errdefs.IsNotFound(err) {
		t.Fatalf("status of a committed ref: %v", err)
	}

	// Read it back, whole and in pieces.
	got, err := content.ReadBlob(ctx, cs, desc)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v (equal %v)", err, bytes.Equal(got, data))
	}
	ra, err := cs.ReaderAt(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	if ra.Size() != desc.Size {
		t.Fatalf("size %d", ra.Size())
	}
	var seq bytes.Buffer
	if _, err := io.CopyBuffer(&seq, io.NewSectionReader(ra, 0, ra.Size()), make([]byte, 32<<10)); err != nil || !bytes.Equal(seq.Bytes(), data) {
		t.Fatalf("sequential read: %v", err)
	}
	p := make([]byte, 100)
	for _, off := range []int64{4 << 20, 10, desc.Size - 50} {
		n, err := ra.ReadAt(p, off)
		want := data[off:min(off+100, desc.Size)]
		if n != len(want) || !bytes.Equal(p[:n], want) || (n < len(p)) != errors.Is(err, io.EOF) {
			t.Fatalf("ReadAt(%d): %d, %v", off, n, err)
		}
	}
	ra.Close()

	// Labels: read, update one, walk by label.
	info, err := cs.Info(ctx, dgst)
	if err != nil || info.Size != desc.Size || info.Labels["test"] != "yes" {
		t.Fatalf("info: %+v, %v", info, err)
	}
	info.Labels = map[string]string{"other": "1"}
	if info, err = cs.Update(ctx, info, "labels.other"); err != nil || info.Labels["other"] != "1" || info.Labels["test"] != "yes" {
		t.Fatalf("update: %+v, %v", info, err)
	}
	var walked []digest.Digest
	if err := cs.Walk(ctx, func(i content.Info) error { walked = append(walked, i.Digest); return nil }, "labels.other==1"); err != nil || !slices.Equal(walked, []digest.Digest{dgst}) {
		t.Fatalf("walk: %v, %v", walked, err)
	}

	// Writing what exists is AlreadyExists, as callers expect.
	if _, err := cs.Writer(ctx, content.WithRef("again"), content.WithDescriptor(desc)); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("writer of an existing blob: %v", err)
	}
	// A commit that does not match is refused, and the ingest can go.
	w, err = cs.Writer(ctx, content.WithRef("bad"))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("abc"))
	if err := w.Commit(ctx, 4, ""); err == nil {
		t.Fatal("commit of a wrong size succeeded")
	}
	if err := cs.Abort(ctx, "bad"); err != nil {
		t.Fatal(err)
	}
	if err := cs.Abort(ctx, "bad"); !errdefs.IsNotFound(err) {
		t.Fatalf("abort of an aborted ref: %v", err)
	}

	if err := cs.Delete(ctx, dgst); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Info(ctx, dgst); !errdefs.IsNotFound(err) || strings.Contains(err.Error(), "rpc error") {
		t.Fatalf("info of a deleted blob: %v", err)
	}
	if _, err := cs.ReaderAt(ctx, desc); !errdefs.IsNotFound(err) {
		t.Fatalf("reader of a deleted blob: %v", err)
	}
}

func TestClientImagesAndContainers(t *testing.T) {
	c := newClient(t, "meta-test")
	ctx := testCtx(t)

	is := c.ImageService()
	target := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("m"), Size: 1}
	img, err := is.Create(ctx, images.Image{Name: "example.com/a:1", Target: target, Labels: map[string]string{"k": "v"}})
	if err != nil || img.CreatedAt.IsZero() {
		t.Fatalf("create image: %+v, %v", img, err)
	}
	if _, err := is.Create(ctx, img); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("duplicate image: %v", err)
	}
	img.Labels = map[string]string{"k": "w"}
	if img, err = is.Update(ctx, img, "labels.k"); err != nil || img.Labels["k"] != "w" {
		t.Fatalf("update image: %+v, %v", img, err)
	}
	if got, err := is.Get(ctx, img.Name); err != nil || got.Target.Digest != target.Digest {
		t.Fatalf("get image: %+v, %v", got, err)
	}
	if list, err := is.List(ctx, "labels.k==w"); err != nil || len(list) != 1 {
		t.Fatalf("list images: %v, %v", list, err)
	}
	if err := is.Delete(ctx, img.Name, images.SynchronousDelete()); err != nil {
		t.Fatal(err)
	}
	if _, err := is.Get(ctx, img.Name); !errdefs.IsNotFound(err) {
		t.Fatalf("get deleted image: %v", err)
	}

	cs := c.ContainerService()
	spec := &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec", Value: []byte(`{"ociVersion":"1.1.0"}`)}
	ctr, err := cs.Create(ctx, containers.Container{
		ID:      "c1",
		Image:   "example.com/a:1",
		Runtime: containers.RuntimeInfo{Name: client.DefaultRuntime},
		Spec:    spec,
		Labels:  map[string]string{"x": "y"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := cs.Get(ctx, "c1")
	if err != nil || got.Spec.GetTypeUrl() != spec.TypeUrl || !bytes.Equal(got.Spec.GetValue(), spec.Value) || got.Runtime.Name != client.DefaultRuntime {
		t.Fatalf("get container: %+v, %v", got, err)
	}
	ctr.Labels = map[string]string{"x": "z"}
	if ctr, err = cs.Update(ctx, ctr, "labels"); err != nil || ctr.Labels["x"] != "z" {
		t.Fatalf("update container: %+v, %v", ctr, err)
	}
	if list, err := cs.List(ctx); err != nil || len(list) != 1 || list[0].ID != "c1" {
		t.Fatalf("list containers: %v, %v", list, err)
	}
	// Another namespace sees none.
	if list, err := cs.List(namespaces.WithNamespace(ctx, "elsewhere")); err != nil || len(list) != 0 {
		t.Fatalf("list in another namespace: %v, %v", list, err)
	}
	if err := cs.Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := cs.Delete(ctx, "c1"); !errdefs.IsNotFound(err) {
		t.Fatalf("delete deleted container: %v", err)
	}
}

func TestClientSnapshots(t *testing.T) {
	c := newClient(t, "snap-test")
	ctx := leaseCtx(t, c)
	for _, name := range []string{"", "naive"} {
		sn := c.SnapshotService(name)
		mounts, err := sn.Prepare(ctx, "work", "", snapshots.WithLabels(map[string]string{"l": "1"}))
		if err != nil || len(mounts) == 0 {
			t.Fatalf("%q: prepare: %v, %v", name, mounts, err)
		}
		if m2, err := sn.Mounts(ctx, "work"); err != nil || len(m2) != len(mounts) || m2[0].Type != mounts[0].Type {
			t.Fatalf("%q: mounts: %v, %v", name, m2, err)
		}
		if err := sn.Commit(ctx, "base", "work"); err != nil {
			t.Fatal(err)
		}
		if _, err := sn.View(ctx, "view", "base"); err != nil {
			t.Fatal(err)
		}
		info, err := sn.Stat(ctx, "view")
		if err != nil || info.Kind != snapshots.KindView || info.Parent != "base" {
			t.Fatalf("%q: stat view: %+v, %v", name, info, err)
		}
		info.Labels = map[string]string{"u": "2"}
		if info, err = sn.Update(ctx, info, "labels.u"); err != nil || info.Labels["u"] != "2" {
			t.Fatalf("%q: update: %+v, %v", name, info, err)
		}
		if _, err := sn.Usage(ctx, "base"); err != nil {
			t.Fatal(err)
		}
		var names []string
		if err := sn.Walk(ctx, func(_ context.Context, i snapshots.Info) error { names = append(names, i.Name); return nil }); err != nil {
			t.Fatal(err)
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"base", "view"}) {
			t.Fatalf("%q: walk: %v", name, names)
		}
		names = nil
		if err := sn.Walk(ctx, func(_ context.Context, i snapshots.Info) error { names = append(names, i.Name); return nil }, "labels.u==2"); err != nil || !slices.Equal(names, []string{"view"}) {
			t.Fatalf("%q: walk by label: %v, %v", name, names, err)
		}
		if err := sn.Remove(ctx, "base"); !errdefs.IsFailedPrecondition(err) {
			t.Fatalf("%q: remove of a parent: %v", name, err)
		}
		for _, k := range []string{"view", "base"} {
			if err := sn.Remove(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := sn.Stat(ctx, "base"); !errdefs.IsNotFound(err) {
			t.Fatalf("%q: stat removed: %v", name, err)
		}
	}
}

func TestClientLeasesAndNamespaces(t *testing.T) {
	c := newClient(t, "lease-test")
	ctx := testCtx(t)

	lm := c.LeasesService()
	l, err := lm.Create(ctx, leases.WithID("l1"), leases.WithLabels(map[string]string{"a": "b"}))
	if err != nil || l.ID != "l1" || l.CreatedAt.IsZero() {
		t.Fatalf("create lease: %+v, %v", l, err)
	}
	res := leases.Resource{ID: digest.FromString("x").String(), Type: "content"}
	if err := lm.AddResource(ctx, l, res); err != nil {
		t.Fatal(err)
	}
	if rs, err := lm.ListResources(ctx, l); err != nil || len(rs) != 1 || rs[0] != res {
		t.Fatalf("resources: %v, %v", rs, err)
	}
	if err := lm.DeleteResource(ctx, l, res); err != nil {
		t.Fatal(err)
	}
	if ls, err := lm.List(ctx, "labels.a==b"); err != nil || len(ls) != 1 || ls[0].ID != "l1" {
		t.Fatalf("list leases: %v, %v", ls, err)
	}

	// WithLease makes a lease that expires, and releases it.
	lctx, done, err := c.WithLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, ok := leases.FromContext(lctx)
	if !ok {
		t.Fatal("no lease in the context")
	}
	ls, err := lm.List(ctx, "id=="+id)
	if err != nil || len(ls) != 1 || ls[0].Labels[leases.LabelExpire] == "" {
		t.Fatalf("WithLease's lease: %v, %v", ls, err)
	}
	// Under a lease, WithLease makes no other.
	if ctx2, _, err := c.WithLease(lctx); err != nil || ctx2 != lctx {
		t.Fatalf("nested WithLease: %v", err)
	}
	if err := done(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lm.Delete(ctx, l, leases.SynchronousDelete); err != nil {
		t.Fatal(err)
	}
	if ls, err := lm.List(ctx); err != nil || len(ls) != 0 {
		t.Fatalf("leases left: %v, %v", ls, err)
	}

	ns := c.NamespaceService()
	if err := ns.Create(ctx, "n1", map[string]string{"a": "1"}); err != nil {
		t.Fatal(err)
	}
	if err := ns.Create(ctx, "n1", nil); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("duplicate namespace: %v", err)
	}
	if err := ns.SetLabel(ctx, "n1", "b", "2"); err != nil {
		t.Fatal(err)
	}
	if err := ns.SetLabel(ctx, "n1", "a", ""); err != nil {
		t.Fatal(err)
	}
	if labels, err := ns.Labels(ctx, "n1"); err != nil || len(labels) != 1 || labels["b"] != "2" {
		t.Fatalf("labels: %v, %v", labels, err)
	}
	if list, err := ns.List(ctx); err != nil || !slices.Contains(list, "n1") {
		t.Fatalf("list namespaces: %v, %v", list, err)
	}
	if err := ns.Delete(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.Labels(ctx, "n1"); !errdefs.IsNotFound(err) {
		t.Fatalf("labels of a deleted namespace: %v", err)
	}
}

func TestClientEvents(t *testing.T) {
	c := newClient(t, "events-test")
	ctx := testCtx(t)
	sctx, cancel := context.WithCancel(ctx)
	ch, errs := c.EventService().Subscribe(sctx, `topic=="/namespaces/create"`)

	// The subscription is in place at some point after Subscribe returns;
	// create namespaces until one is seen.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; {
		select {
		case env := <-ch:
			if env.Topic != "/namespaces/create" || env.Namespace == "" || env.Event == nil {
				t.Fatalf("event: %+v", env)
			}
			cancel()
			// Ending the context ends the subscription without an error.
			select {
			case err, ok := <-errs:
				if ok {
					t.Fatalf("error after cancel: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("subscription did not end")
			}
			return
		case err := <-errs:
			t.Fatalf("subscription: %v", err)
		case <-tick.C:
			i++
			if err := c.NamespaceService().Create(ctx, "ev"+strings.Repeat("x", i), nil); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("no event")
		}
	}
}
