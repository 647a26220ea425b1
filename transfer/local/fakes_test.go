package local

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	contentlocal "github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/metadata"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/remotes"
	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/snapshots/naive"
	"github.com/llitfkitfk/containerd/transfer"
	"github.com/llitfkitfk/containerd/unpack"
)

// env is a daemon's worth of stores in a temporary directory: the real
// content store and metadata database, and the naive snapshotter.
type env struct {
	ctx    context.Context
	db     *metadata.DB
	cs     content.Store
	is     images.Store
	leases leases.Manager
	sn     snapshots.Snapshotter
	svc    *Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	backing, err := contentlocal.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	sn, err := naive.NewSnapshotter(filepath.Join(dir, "naive"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := namespaces.WithNamespace(context.Background(), "test")
	db, err := metadata.Open(ctx, filepath.Join(dir, "meta.db"), backing, map[string]snapshots.Snapshotter{"naive": sn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{ctx: ctx, db: db, cs: db.ContentStore(), is: metadata.NewImageStore(db), leases: metadata.NewLeaseManager(db), sn: db.Snapshotter("naive")}
	e.svc = NewTransferService(e.cs, e.is, Config{
		Leases:                      e.leases,
		MaxConcurrentDownloads:      3,
		MaxConcurrentUploadedLayers: 3,
		DefaultSnapshotter:          "naive",
		UnpackPlatforms: []unpack.Platform{{
			Platform:       platforms.OnlyOS(platforms.DefaultSpec()),
			SnapshotterKey: "naive",
			Snapshotter:    e.sn,
			Applier:        testutil.DirApplier{CS: e.cs},
		}},
	})
	return e
}

// noLeases fails the test if any lease is left in the namespace.
func (e *env) noLeases(t *testing.T) {
	t.Helper()
	ls, err := e.leases.List(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 0 {
		t.Errorf("leases left behind: %v", ls)
	}
}

// testImage is an image's blobs and the descriptors of its parts.
type testImage struct {
	blobs    map[digest.Digest][]byte
	root     ocispec.Descriptor   // the index, or the manifest if one
	manifest []ocispec.Descriptor // per platform
	layers   [][]ocispec.Descriptor
	diffIDs  [][]digest.Digest
}

func (ti *testImage) add(mediaType string, b []byte) ocispec.Descriptor {
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	ti.blobs[d.Digest] = b
	return d
}

// layer makes a gzipped tar of files (name -> contents).
func layer(t *testing.T, files map[string]string) (blob []byte, diffID digest.Digest) {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(tb.Bytes())
	zw.Close()
	return zb.Bytes(), digest.FromBytes(tb.Bytes())
}

// newImage makes an image of one manifest per platform, each with the
// layers given (one map of files per layer, made distinct per platform);
// with more than one platform, or index set, the root is an index.
func newImage(t *testing.T, plats []ocispec.Platform, index bool, layerFiles ...map[string]string) *testImage {
	t.Helper()
	ti := &testImage{blobs: map[digest.Digest][]byte{}}
	var manifests []ocispec.Descriptor
	for _, p := range plats {
		var (
			ls      []ocispec.Descriptor
			diffIDs []digest.Digest
		)
		for _, files := range layerFiles {
			f := map[string]string{}
			for k, v := range files {
				f[k] = v + " for " + platforms.Format(p)
			}
			b, id := layer(t, f)
			ls = append(ls, ti.add(ocispec.MediaTypeImageLayerGzip, b))
			diffIDs = append(diffIDs, id)
		}
		cfg, _ := json.Marshal(ocispec.Image{Platform: p, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}})
		cd := ti.add(ocispec.MediaTypeImageConfig, cfg)
		m, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cd, Layers: ls})
		md := ti.add(ocispec.MediaTypeImageManifest, m)
		pp := p
		md.Platform = &pp
		manifests = append(manifests, md)
		ti.layers = append(ti.layers, ls)
		ti.diffIDs = append(ti.diffIDs, diffIDs)
	}
	ti.manifest = manifests
	if len(manifests) == 1 && !index {
		ti.root = manifests[0]
		ti.root.Platform = nil
		return ti
	}
	idx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: manifests})
	ti.root = ti.add(ocispec.MediaTypeImageIndex, idx)
	return ti
}

var (
	errInjected = errors.New("connection reset (injected)")
	host        = platforms.DefaultSpec()
	other       = ocispec.Platform{OS: "linux", Architecture: "s390x"}
)

// fakeRegistry is an ImageFetcher serving a testImage's blobs.
type fakeRegistry struct {
	name string
	img  *testImage

	mu      sync.Mutex
	failAt  map[digest.Digest]int64         // serve this many bytes, then fail
	gates   map[digest.Digest]chan struct{} // serve half, then wait for close
	fetched map[digest.Digest]int
	seeks   map[digest.Digest][]int64 // offsets fetches resumed at

	inflight, maxInflight int // layers open at once, now and at most
	// holdFor, if set, keeps each blob open that long, or until more
	// than holdLimit are: so that blobs fetched beyond a limit overlap.
	holdFor   time.Duration
	holdLimit int
	over      chan struct{} // closed once more than holdLimit are open
}

func newRegistry(name string, img *testImage) *fakeRegistry {
	return &fakeRegistry{name: name, img: img, failAt: map[digest.Digest]int64{}, gates: map[digest.Digest]chan struct{}{}, fetched: map[digest.Digest]int{}, seeks: map[digest.Digest][]int64{}}
}

func (r *fakeRegistry) String() string { return "fake registry " + r.name }

func (r *fakeRegistry) Resolve(ctx context.Context) (string, ocispec.Descriptor, error) {
	return r.name, r.img.root, nil
}

func (r *fakeRegistry) Fetcher(ctx context.Context, ref string) (remotes.Fetcher, error) {
	if ref != r.name {
		return nil, fmt.Errorf("fetcher for %q, resolved %q", ref, r.name)
	}
	return r, nil
}

func (r *fakeRegistry) fetches(d digest.Digest) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetched[d]
}

func (r *fakeRegistry) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	b, ok := r.img.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	r.mu.Lock()
	r.fetched[desc.Digest]++
	layer := images.IsLayerType(desc.MediaType)
	if layer {
		r.inflight++
		r.maxInflight = max(r.maxInflight, r.inflight)
	}
	if r.holdFor > 0 && r.inflight > r.holdLimit && r.over != nil {
		close(r.over)
		r.over = nil
	}
	over := r.over
	fail, failing := r.failAt[desc.Digest]
	gate := r.gates[desc.Digest]
	r.mu.Unlock()
	switch {
	case failing:
		return r.closer(io.MultiReader(bytes.NewReader(b[:fail]), errReader{}), layer), nil
	case gate != nil:
		half := len(b) / 2
		return r.closer(io.MultiReader(bytes.NewReader(b[:half]), &gateReader{ctx: ctx, gate: gate, rest: bytes.NewReader(b[half:])}), layer), nil
	}
	if r.holdFor > 0 {
		t := time.NewTimer(r.holdFor)
		defer t.Stop()
		select {
		case <-t.C:
		case <-over:
		}
	}
	return &seekableBlob{Reader: bytes.NewReader(b), r: r, d: desc.Digest, layer: layer}, nil
}

// seekableBlob lets a fetch resume part way, recording where.
type seekableBlob struct {
	*bytes.Reader
	r     *fakeRegistry
	d     digest.Digest
	layer bool
}

func (b *seekableBlob) Close() error { b.r.closed(b.layer); return nil }

func (r *fakeRegistry) closed(layer bool) {
	if layer {
		r.mu.Lock()
		r.inflight--
		r.mu.Unlock()
	}
}

type closerFunc struct {
	io.Reader
	close func()
}

func (c closerFunc) Close() error { c.close(); return nil }

func (r *fakeRegistry) closer(rd io.Reader, layer bool) io.ReadCloser {
	return closerFunc{Reader: rd, close: func() { r.closed(layer) }}
}

func (b *seekableBlob) Seek(offset int64, whence int) (int64, error) {
	n, err := b.Reader.Seek(offset, whence)
	b.r.mu.Lock()
	b.r.seeks[b.d] = append(b.r.seeks[b.d], n)
	b.r.mu.Unlock()
	return n, err
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errInjected }

type gateReader struct {
	ctx  context.Context
	gate chan struct{}
	rest io.Reader
}

func (g *gateReader) Read(p []byte) (int, error) {
	select {
	case <-g.gate:
	case <-g.ctx.Done():
		return 0, g.ctx.Err()
	}
	return g.rest.Read(p)
}

// fakeStore is an ImageStorer (and ImageGetter, ImageFilterer,
// ImageUnpacker) naming one image, or, for imports, the images named by
// manifests' io.containerd.image.name annotations.
type fakeStore struct {
	name      string
	platforms []ocispec.Platform
	unpacks   []transfer.UnpackConfiguration
}

func (s *fakeStore) Store(ctx context.Context, desc ocispec.Descriptor, is images.Store) ([]images.Image, error) {
	name := s.name
	if name == "" {
		name = desc.Annotations[ocispec.AnnotationRefName]
		if n, ok := desc.Annotations["io.containerd.image.name"]; ok {
			name = n
		}
	}
	if name == "" {
		return nil, fmt.Errorf("no name for %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	target := desc
	target.Annotations = nil
	img := images.Image{Name: name, Target: target}
	out, err := is.Create(ctx, img)
	if errdefs.IsAlreadyExists(err) {
		out, err = is.Update(ctx, img)
	}
	if err != nil {
		return nil, err
	}
	return []images.Image{out}, nil
}

func (s *fakeStore) Get(ctx context.Context, is images.Store) (images.Image, error) {
	return is.Get(ctx, s.name)
}

func (s *fakeStore) Platforms() []ocispec.Platform { return s.platforms }

func (s *fakeStore) ImageFilter(h images.HandlerFunc, cs content.Store) images.HandlerFunc {
	if len(s.platforms) == 0 {
		return h
	}
	return images.FilterPlatforms(h, platforms.Any(s.platforms...))
}

func (s *fakeStore) UnpackPlatforms() []transfer.UnpackConfiguration { return s.unpacks }

// events collects progress, safe for concurrent use.
type events struct {
	mu   sync.Mutex
	list []transfer.Progress
	on   func(transfer.Progress)
}

func (ev *events) record(p transfer.Progress) {
	ev.mu.Lock()
	ev.list = append(ev.list, p)
	on := ev.on
	ev.mu.Unlock()
	if on != nil {
		on(p)
	}
}

func (ev *events) all() []transfer.Progress {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return append([]transfer.Progress(nil), ev.list...)
}

// of returns the events about name.
func (ev *events) of(name string) []transfer.Progress {
	var out []transfer.Progress
	for _, p := range ev.all() {
		if p.Name == name {
			out = append(out, p)
		}
	}
	return out
}
