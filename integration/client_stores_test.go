//go:build integration

package integration

import (
	"archive/tar"
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
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/snapshots"
)

// TestClientStores drives every store of our client against our daemon
// and containerd's, 1.6 and 2.x: the wire is the same, and so must be
// what the client makes of the answers.
func TestClientStores(t *testing.T) {
	scenarios := []struct {
		name string
		run  func(t *testing.T, c *client.Client)
	}{
		{"Connect", clientConnect},
		{"Content", clientContent},
		{"ImagesAndContainers", clientImagesAndContainers},
		{"Snapshots", clientSnapshots},
		{"LeasesAndNamespaces", clientLeasesAndNamespaces},
		{"Events", clientEvents},
		{"Diff", clientDiff},
	}
	daemons := []struct {
		name  string
		start func(t *testing.T) string // the address
	}{
		{"ours", func(t *testing.T) string {
			d := newDaemon(t, "")
			d.start()
			return d.Address
		}},
		{"containerd1.6", func(t *testing.T) string {
			return startPeer(t, distroContainerd, 2, shimUnderTest(t)).Address
		}},
		{"containerd2", func(t *testing.T) string {
			return startPeer(t, containerd2(t, "containerd"), 3, shimUnderTest(t)).Address
		}},
	}
	for _, d := range daemons {
		t.Run(d.name, func(t *testing.T) {
			address := d.start(t)
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					ns := strings.ToLower(sc.name)
					c, err := client.New(address, client.WithDefaultNamespace(ns), client.WithTimeout(10*time.Second))
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					sc.run(t, c)
				})
			}
		})
	}
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

func clientConnect(t *testing.T, c *client.Client) {
	ctx := testCtx(t)
	v, err := c.Version(ctx)
	if err != nil || v.Version == "" {
		t.Fatalf("version: %+v, %v", v, err)
	}
	srv, err := c.Server(ctx)
	// containerd 1.6 does not say its pid.
	if err != nil || srv.UUID == "" {
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

func clientContent(t *testing.T, c *client.Client) {
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

	// A client that goes away midway (its context ends) leaves what the
	// daemon acknowledged; the next writer resumes from there, once the
	// daemon has let go of the ref (until then: Unavailable, retry).
	other := make([]byte, 3<<20)
	rand.Read(other)
	odesc := ocispec.Descriptor{Digest: digest.FromBytes(other), Size: int64(len(other))}
	wctx, cancelWrite := context.WithCancel(ctx)
	w, err = cs.Writer(wctx, content.WithRef("dropped"), content.WithDescriptor(odesc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(other[:2<<20]); err != nil {
		t.Fatal(err)
	}
	cancelWrite()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		w, err = cs.Writer(ctx, content.WithRef("dropped"), content.WithDescriptor(odesc))
		if !errdefs.IsUnavailable(err) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if st, err := w.Status(); err != nil || st.Offset != 2<<20 {
		t.Fatalf("after a dropped writer: %+v, %v", st, err)
	}
	if _, err := w.Write(other[2<<20:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, odesc.Size, odesc.Digest); err != nil {
		t.Fatal(err)
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

func clientImagesAndContainers(t *testing.T, c *client.Client) {
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

func clientSnapshots(t *testing.T, c *client.Client) {
	ctx := leaseCtx(t, c)
	// A snapshotter the daemon does not have is named in the error.
	if _, err := c.SnapshotService("nope").Stat(ctx, "x"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("stat in a snapshotter that is not there: %v", err)
	}
	for _, name := range []string{"", client.DefaultSnapshotter} {
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
		// Cleanup is the API's; a snapshotter may not implement it.
		if err := sn.(snapshots.Cleaner).Cleanup(ctx); err != nil && !errdefs.IsNotImplemented(err) {
			t.Fatalf("%q: cleanup: %v", name, err)
		}
	}
}

func clientLeasesAndNamespaces(t *testing.T, c *client.Client) {
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
	if list, err := ns.List(ctx); err != nil || slices.Contains(list, "n1") {
		t.Fatalf("namespaces after delete: %v, %v", list, err)
	}
}

func clientEvents(t *testing.T, c *client.Client) {
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

// clientDiff applies a layer to a snapshot and diffs the snapshot back
// into a layer, both through the daemon's differ.
func clientDiff(t *testing.T, c *client.Client) {
	ctx := leaseCtx(t, c)
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	body := []byte("hello from the client\n")
	tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Unix(1, 0)})
	tw.Write(body)
	tw.Close()
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(layer.Bytes()), Size: int64(layer.Len())}
	if err := content.WriteBlob(ctx, c.ContentStore(), "layer", bytes.NewReader(layer.Bytes()), desc); err != nil {
		t.Fatal(err)
	}

	sn := c.SnapshotService("")
	if _, err := sn.Prepare(ctx, "empty", ""); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, "base", "empty"); err != nil {
		t.Fatal(err)
	}
	upper, err := sn.Prepare(ctx, "applied", "base")
	if err != nil {
		t.Fatal(err)
	}
	lower, err := sn.View(ctx, "lower", "base")
	if err != nil {
		t.Fatal(err)
	}
	ds := c.DiffService()
	applied, err := ds.Apply(ctx, desc, upper)
	if err != nil {
		t.Fatal(err)
	}
	// An uncompressed layer's diff id is its digest.
	if applied.Digest != desc.Digest {
		t.Fatalf("applied %+v, want digest %s", applied, desc.Digest)
	}

	layerOut, err := ds.Compare(ctx, lower, upper, diff.WithMediaType(ocispec.MediaTypeImageLayer), diff.WithReference("client-diff"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := content.ReadBlob(ctx, c.ContentStore(), layerOut)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(data))
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "/") == "hello.txt" {
			got, _ := io.ReadAll(tr)
			found = bytes.Equal(got, body)
		}
	}
	if !found {
		t.Fatalf("the diff %+v has no hello.txt as applied", layerOut)
	}
	for _, k := range []string{"lower", "applied", "base"} {
		if err := sn.Remove(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
}
