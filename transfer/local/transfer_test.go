package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/transfer"
	"github.com/llitfkitfk/containerd/unpack"
)

const imageName = "registry.test/library/app:1"

func twoLayers() []map[string]string {
	return []map[string]string{{"etc/first": "one"}, {"bin/second": "two"}}
}

func TestUnknownPairsAreNotImplemented(t *testing.T) {
	e := newEnv(t)
	reg := newRegistry(imageName, newImage(t, []ocispec.Platform{host}, false, twoLayers()...))
	for _, c := range []struct {
		name     string
		src, dst interface{}
	}{
		{"nothing to nothing", struct{}{}, struct{}{}},
		{"registry to exporter", reg, exporterFunc(nil)},
		{"storer to storer", struct{ transfer.ImageStorer }{&fakeStore{}}, &fakeStore{}},
	} {
		err := e.svc.Transfer(e.ctx, c.src, c.dst)
		if !errors.Is(err, errdefs.ErrNotImplemented) {
			t.Errorf("%s: got %v, want NotImplemented", c.name, err)
		}
	}
	if n := reg.fetches(reg.img.root.Digest); n != 0 {
		t.Errorf("an unknown pair fetched from the registry %d times", n)
	}
}

type exporterFunc func(ctx context.Context, cs content.Store, imgs []images.Image) error

func (f exporterFunc) Export(ctx context.Context, cs content.Store, imgs []images.Image) error {
	return f(ctx, cs, imgs)
}

// A pull that fails mid-layer records no image and holds no lease; the
// ingest it left is there for the retry, which succeeds.
func TestPullStoresImageOnlyWhenComplete(t *testing.T) {
	e := newEnv(t)
	img := newImage(t, []ocispec.Platform{host}, false, twoLayers()...)
	reg := newRegistry(imageName, img)
	broken := img.layers[0][1]
	reg.failAt[broken.Digest] = broken.Size / 2

	err := e.svc.Transfer(e.ctx, reg, &fakeStore{name: imageName})
	if !errors.Is(err, errInjected) {
		t.Fatalf("pull through a failing fetch: got %v, want the fetch's error", err)
	}
	if _, err := e.is.Get(e.ctx, imageName); !errdefs.IsNotFound(err) {
		t.Fatalf("after a failed pull, image Get = %v, want NotFound", err)
	}
	e.noLeases(t)
	if _, err := e.cs.Info(e.ctx, broken.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("the broken layer is a blob: %v", err)
	}
	// The partial layer outlives the lease, and a collection, for the
	// retry to resume.
	if _, err := e.db.GarbageCollect(e.ctx); err != nil {
		t.Fatal(err)
	}
	sts, err := e.cs.ListStatuses(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var partial bool
	for _, st := range sts {
		partial = partial || (st.Offset > 0 && st.Offset < broken.Size)
	}
	if !partial {
		t.Errorf("no partial ingest left to resume: %+v", sts)
	}

	delete(reg.failAt, broken.Digest)
	if err := e.svc.Transfer(e.ctx, reg, &fakeStore{name: imageName}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	reg.mu.Lock()
	seeks := reg.seeks[broken.Digest]
	reg.mu.Unlock()
	if len(seeks) != 1 || seeks[0] != broken.Size/2 {
		t.Errorf("the retry resumed the broken layer at %v, want [%d]", seeks, broken.Size/2)
	}
	got, err := e.is.Get(e.ctx, imageName)
	if err != nil {
		t.Fatal(err)
	}
	if got.Target.Digest != img.root.Digest {
		t.Errorf("image target %s, want %s", got.Target.Digest, img.root.Digest)
	}
	for d := range img.blobs {
		if _, err := e.cs.Info(e.ctx, d); err != nil {
			t.Errorf("blob %s after the pull: %v", d, err)
		}
	}
	// Once the lease is gone, the manifest's labels are what keep its
	// children: they must name every one.
	info, err := e.cs.Info(e.ctx, img.root.Digest)
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for k, v := range info.Labels {
		if strings.HasPrefix(k, images.LabelGCRefContent) {
			named[v] = true
		}
	}
	for _, l := range img.layers[0] {
		if !named[l.Digest.String()] {
			t.Errorf("manifest labels %v do not name layer %s", info.Labels, l.Digest)
		}
		// The source label lets a push to another repository of the
		// registry mount the layer.
		li, err := e.cs.Info(e.ctx, l.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if got := li.Labels["containerd.io/distribution.source.registry.test"]; got != "library/app" {
			t.Errorf("layer %s source label %q, want library/app", l.Digest, got)
		}
	}
	e.noLeases(t)

	// Pulled from another repository, the layers name both.
	reg2 := newRegistry("registry.test/other/app:2", img)
	if err := e.svc.Transfer(e.ctx, reg2, &fakeStore{name: "registry.test/other/app:2"}); err != nil {
		t.Fatal(err)
	}
	li, err := e.cs.Info(e.ctx, img.layers[0][0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if got := li.Labels["containerd.io/distribution.source.registry.test"]; got != "library/app,other/app" {
		t.Errorf("source label after a second repository %q", got)
	}
}

// A lease the client put on the context is used, not replaced or deleted.
func TestPullUsesTheClientsLease(t *testing.T) {
	e := newEnv(t)
	l, err := e.leases.Create(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	reg := newRegistry(imageName, newImage(t, []ocispec.Platform{host}, false, twoLayers()...))
	if err := e.svc.Transfer(leases.WithLease(e.ctx, l.ID), reg, &fakeStore{name: imageName}); err != nil {
		t.Fatal(err)
	}
	ls, err := e.leases.List(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0].ID != l.ID {
		t.Fatalf("leases after the pull: %v, want only the client's %s", ls, l.ID)
	}
	rs, err := e.leases.ListResources(e.ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) == 0 {
		t.Error("the client's lease holds nothing of the pull")
	}
}

// containerd's client wraps every transfer in a lease of its own, and
// deletes it when the call returns: a failed pull's partial layer must
// leave that lease, or the collector takes it before the retry.
func TestFailedPullUnderTheClientsLeaseKeepsPartialLayer(t *testing.T) {
	e := newEnv(t)
	img := newImage(t, []ocispec.Platform{host}, false, twoLayers()...)
	reg := newRegistry(imageName, img)
	broken := img.layers[0][1]
	reg.failAt[broken.Digest] = broken.Size / 2

	l, err := e.leases.Create(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Transfer(leases.WithLease(e.ctx, l.ID), reg, &fakeStore{name: imageName}); !errors.Is(err, errInjected) {
		t.Fatalf("pull through a failing fetch: got %v, want the fetch's error", err)
	}
	if err := e.leases.Delete(e.ctx, l); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.GarbageCollect(e.ctx); err != nil {
		t.Fatal(err)
	}

	delete(reg.failAt, broken.Digest)
	if err := e.svc.Transfer(e.ctx, reg, &fakeStore{name: imageName}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	reg.mu.Lock()
	seeks := reg.seeks[broken.Digest]
	reg.mu.Unlock()
	if len(seeks) != 1 || seeks[0] != broken.Size/2 {
		t.Errorf("the retry resumed the broken layer at %v, want [%d]", seeks, broken.Size/2)
	}
}

func TestPullProgress(t *testing.T) {
	e := newEnv(t)
	img := newImage(t, []ocispec.Platform{host}, false, twoLayers()...)
	reg := newRegistry(imageName, img)
	gated := img.layers[0][0]
	gate := make(chan struct{})
	reg.gates[gated.Digest] = gate
	gatedName := "layer-" + gated.Digest.String()

	// The gated layer stops half way until its bytes have been reported.
	var ev events
	var opened bool
	ev.on = func(p transfer.Progress) {
		if p.Name == gatedName && p.Event == "downloading" && !opened {
			opened = true
			close(gate)
		}
	}
	done := make(chan error, 1)
	go func() {
		done <- e.svc.Transfer(e.ctx, reg, &fakeStore{name: imageName}, transfer.WithProgress(ev.record))
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("pull hung: no \"downloading\" event for the half-fetched layer")
	}

	all := ev.all()
	wantStatus := []string{"Resolving from " + reg.String(), "Pulling from " + reg.String()}
	for i, w := range wantStatus {
		if all[i].Event != w || all[i].Name != "" {
			t.Errorf("event %d = %+v, want status %q", i, all[i], w)
		}
	}
	if last := all[len(all)-1]; last.Event != "Completed pull from "+reg.String() {
		t.Errorf("last event %+v", last)
	}
	if saved := all[len(all)-2]; saved.Event != "saved" || saved.Name != imageName {
		t.Errorf("next to last event %+v, want saved %s", saved, imageName)
	}

	manifestName := "manifest-" + img.root.Digest.String()
	for _, d := range append([]ocispec.Descriptor{img.root}, img.layers[0]...) {
		name := refKey(d)
		var seq []string
		for _, p := range ev.of(name) {
			seq = append(seq, p.Event)
			if p.Total != d.Size {
				t.Errorf("%s %s: total %d, want %d", name, p.Event, p.Total, d.Size)
			}
			if p.Event == "downloading" && (p.Progress <= 0 || p.Progress >= d.Size) {
				t.Errorf("%s downloading %d of %d bytes, want part", name, p.Progress, d.Size)
			}
			if p.Event == "complete" && p.Progress != d.Size {
				t.Errorf("%s complete at %d of %d", name, p.Progress, d.Size)
			}
			if d.Digest != img.root.Digest && (len(p.Parents) != 1 || p.Parents[0] != manifestName) {
				t.Errorf("%s %s: parents %v, want [%s]", name, p.Event, p.Parents, manifestName)
			}
		}
		want := "waiting complete"
		if name == gatedName {
			want = "waiting downloading complete"
		}
		if got := strings.Join(seq, " "); got != want {
			t.Errorf("%s: events %q, want %q", name, got, want)
		}
	}

	// Pulled again, every blob is already there.
	var again events
	if err := e.svc.Transfer(e.ctx, reg, &fakeStore{name: imageName}, transfer.WithProgress(again.record)); err != nil {
		t.Fatal(err)
	}
	for d := range img.blobs {
		if n := reg.fetches(d); n != 1 {
			t.Errorf("blob %s fetched %d times over two pulls", d, n)
		}
	}
	for _, l := range img.layers[0] {
		var seq []string
		for _, p := range again.of(refKey(l)) {
			seq = append(seq, p.Event)
		}
		if got := strings.Join(seq, " "); got != "waiting already exists" {
			t.Errorf("second pull, %s: events %q", refKey(l), got)
		}
	}
}

func TestPullNoMatchingPlatform(t *testing.T) {
	e := newEnv(t)
	img := newImage(t, []ocispec.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}, true, twoLayers()...)
	reg := newRegistry(imageName, img)
	err := e.svc.Transfer(e.ctx, reg, &fakeStore{name: imageName, platforms: []ocispec.Platform{other}})
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "linux/s390x") {
		t.Fatalf("pull for a platform the index lacks: got %v, want NotFound naming linux/s390x", err)
	}
	if _, err := e.is.Get(e.ctx, imageName); !errdefs.IsNotFound(err) {
		t.Errorf("image recorded: %v", err)
	}
	for _, ls := range img.layers {
		for _, l := range ls {
			if n := reg.fetches(l.Digest); n != 0 {
				t.Errorf("layer %s fetched though no platform matched", l.Digest)
			}
		}
	}
	e.noLeases(t)
}

// Of a multi-platform index, only the destination's platform is fetched.
func TestPullFetchesOnlyTheWantedPlatform(t *testing.T) {
	e := newEnv(t)
	img := newImage(t, []ocispec.Platform{host, other}, true, twoLayers()...)
	reg := newRegistry(imageName, img)
	if err := e.svc.Transfer(e.ctx, reg, &fakeStore{name: imageName, platforms: []ocispec.Platform{host}}); err != nil {
		t.Fatal(err)
	}
	for i, ls := range img.layers {
		for _, l := range ls {
			want := 0
			if i == 0 {
				want = 1
			}
			if n := reg.fetches(l.Digest); n != want {
				t.Errorf("platform %d layer %s fetched %d times, want %d", i, l.Digest, n, want)
			}
		}
	}
}

// checkUnpacked checks that the snapshot chain of diffIDs is committed in
// e's snapshotter with the files of the last layer.
func checkUnpacked(t *testing.T, e *env, diffIDs []digest.Digest, file, want string) {
	t.Helper()
	for i := range diffIDs {
		chain := identity.ChainID(diffIDs[:i+1]).String()
		info, err := e.sn.Stat(e.ctx, chain)
		if err != nil {
			t.Fatalf("snapshot of layer %d (%s): %v", i, chain, err)
		}
		if info.Kind != snapshots.KindCommitted {
			t.Errorf("snapshot %s is %v, want committed", chain, info.Kind)
		}
		if i > 0 && info.Parent != identity.ChainID(diffIDs[:i]).String() {
			t.Errorf("snapshot %s has parent %q", chain, info.Parent)
		}
	}
	top := identity.ChainID(diffIDs).String()
	mounts, err := e.sn.View(e.ctx, "check-"+top, top)
	if err != nil {
		t.Fatal(err)
	}
	defer e.sn.Remove(e.ctx, "check-"+top)
	if len(mounts) != 1 || mounts[0].Type != "bind" {
		t.Fatalf("naive view mounts %v", mounts)
	}
	b, err := os.ReadFile(filepath.Join(mounts[0].Source, file))
	if err != nil || string(b) != want {
		t.Errorf("%s in the unpacked image: %q, %v; want %q", file, b, err, want)
	}
}

func TestPullUnpacks(t *testing.T) {
	e := newEnv(t)
	img := newImage(t, []ocispec.Platform{host, other}, true, twoLayers()...)
	reg := newRegistry(imageName, img)
	dst := &fakeStore{name: imageName, platforms: []ocispec.Platform{host}, unpacks: []transfer.UnpackConfiguration{{Platform: host, Snapshotter: "naive"}}}
	var ev events
	if err := e.svc.Transfer(e.ctx, reg, dst, transfer.WithProgress(ev.record)); err != nil {
		t.Fatal(err)
	}
	checkUnpacked(t, e, img.diffIDs[0], "bin/second", "two for "+platforms.Format(host))
	e.noLeases(t)
	// With the lease gone, the image alone keeps its content and
	// snapshots through a collection.
	if _, err := e.db.GarbageCollect(e.ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range append([]ocispec.Descriptor{img.root, img.manifest[0]}, img.layers[0]...) {
		if _, err := e.cs.Info(e.ctx, d.Digest); err != nil {
			t.Errorf("after GC, blob %s: %v", d.Digest, err)
		}
	}
	checkUnpacked(t, e, img.diffIDs[0], "bin/second", "two for "+platforms.Format(host))
	// The config names the snapshot, so that it lives as long as the image.
	cfg, err := images.Config(e.ctx, e.cs, img.root, platforms.Only(host))
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.cs.Info(e.ctx, cfg.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Labels["containerd.io/gc.ref.snapshot.naive"]; got != identity.ChainID(img.diffIDs[0]).String() {
		t.Errorf("config label gc.ref.snapshot.naive = %q", got)
	}
	var extracted int
	for _, p := range ev.all() {
		if p.Event == "extracted" {
			extracted++
		}
	}
	if extracted != len(img.layers[0]) {
		t.Errorf("%d extracted events, want %d", extracted, len(img.layers[0]))
	}
}

func TestUnpackRequestNotConfigured(t *testing.T) {
	e := newEnv(t)
	reg := newRegistry(imageName, newImage(t, []ocispec.Platform{host}, false, twoLayers()...))
	for _, u := range []transfer.UnpackConfiguration{
		{Platform: host, Snapshotter: "zfs"},
		{Platform: ocispec.Platform{OS: "windows", Architecture: "amd64"}},
	} {
		err := e.svc.Transfer(e.ctx, reg, &fakeStore{name: imageName, unpacks: []transfer.UnpackConfiguration{u}})
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), platforms.Format(u.Platform)) {
			t.Errorf("unpack %+v: got %v, want InvalidArgument naming the platform", u, err)
		}
	}
	if _, err := e.is.Get(e.ctx, imageName); !errdefs.IsNotFound(err) {
		t.Errorf("image recorded: %v", err)
	}
}

func TestUnpackPlatformChoice(t *testing.T) {
	linux := platforms.OnlyOS(ocispec.Platform{OS: "linux", Architecture: "amd64"})
	s := NewTransferService(nil, nil, Config{DefaultSnapshotter: "overlayfs", UnpackPlatforms: []unpack.Platform{
		{Platform: linux, SnapshotterKey: "native"},
		{Platform: linux, SnapshotterKey: "overlayfs"},
		{Platform: linux, SnapshotterKey: "naive"},
	}})
	for _, c := range []struct {
		snapshotter, want string
		ok                bool
	}{
		{"", "overlayfs", true},
		{"naive", "naive", true},
		{"native", "native", true},
		{"btrfs", "", false},
	} {
		up, ok := s.unpackPlatform(transfer.UnpackConfiguration{Platform: ocispec.Platform{OS: "linux", Architecture: "arm64"}, Snapshotter: c.snapshotter})
		if ok != c.ok || up.SnapshotterKey != c.want {
			t.Errorf("snapshotter %q: got %q %v, want %q %v", c.snapshotter, up.SnapshotterKey, ok, c.want, c.ok)
		}
	}
	if _, ok := s.unpackPlatform(transfer.UnpackConfiguration{Platform: ocispec.Platform{OS: "windows"}}); ok {
		t.Error("a windows unpack matched linux configurations")
	}
	// With no default among them, the first that fits is taken.
	s.config.DefaultSnapshotter = "zfs"
	if up, _ := s.unpackPlatform(transfer.UnpackConfiguration{Platform: ocispec.Platform{OS: "linux"}}); up.SnapshotterKey != "native" {
		t.Errorf("without the default, chose %q", up.SnapshotterKey)
	}
}

// A schema 1 manifest, at the top or inside an index, is refused as bad
// input, not as an unknown pair (which would send the caller elsewhere).
func TestPullSchema1IsInvalid(t *testing.T) {
	e := newEnv(t)
	img := newImage(t, []ocispec.Platform{host}, false, twoLayers()...)
	s1 := img.add(images.MediaTypeDockerSchema1Manifest, []byte(`{"schemaVersion":1}`))
	s1.Platform = &host
	idx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{s1}})
	for _, root := range []ocispec.Descriptor{s1, img.add(ocispec.MediaTypeImageIndex, idx)} {
		img.root = root
		err := e.svc.Transfer(e.ctx, newRegistry(imageName, img), &fakeStore{name: imageName})
		if !errdefs.IsInvalidArgument(err) || errors.Is(err, errdefs.ErrNotImplemented) || !strings.Contains(err.Error(), "schema 1") {
			t.Errorf("pull of schema 1 (root %s): %v, want InvalidArgument", root.MediaType, err)
		}
	}
	if _, err := e.is.Get(e.ctx, imageName); !errdefs.IsNotFound(err) {
		t.Errorf("image recorded: %v", err)
	}
}

// No more layers are open at once than max_concurrent_downloads, whether
// the pull's walk or the unpacker fetches them. (Manifests and configs
// are not bounded: an unpacker's layer fetches, started with the
// manifest, may wait for the config.)
func TestPullDownloadLimit(t *testing.T) {
	var files []map[string]string
	for i := range 6 {
		files = append(files, map[string]string{fmt.Sprintf("f%d", i): strings.Repeat("x", i+1)})
	}
	for _, unpacked := range []bool{false, true} {
		e := newEnv(t)
		e.svc = NewTransferService(e.cs, e.is, Config{Leases: e.leases, MaxConcurrentDownloads: 2, DefaultSnapshotter: "naive", UnpackPlatforms: e.svc.config.UnpackPlatforms})
		reg := newRegistry(imageName, newImage(t, []ocispec.Platform{host}, false, files...))
		// Each blob stays open a while, so that fetches beyond the
		// limit would overlap; the limit holding never depends on it.
		reg.holdFor, reg.holdLimit, reg.over = 20*time.Millisecond, 2, make(chan struct{})
		dst := &fakeStore{name: imageName}
		if unpacked {
			dst.unpacks = []transfer.UnpackConfiguration{{Platform: host}}
		}
		if err := e.svc.Transfer(e.ctx, reg, dst); err != nil {
			t.Fatal(err)
		}
		if reg.maxInflight > 2 || reg.maxInflight < 1 {
			t.Errorf("unpack %v: %d layers fetched at once, limit 2", unpacked, reg.maxInflight)
		}
	}
}
