package remotes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/platforms"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"
)

func TestMakeRefKey(t *testing.T) {
	d := digest.FromString("x")
	for mt, want := range map[string]string{
		ocispec.MediaTypeImageManifest:            "manifest-",
		images.MediaTypeDockerSchema2Manifest:     "manifest-",
		ocispec.MediaTypeImageIndex:               "index-",
		images.MediaTypeDockerSchema2ManifestList: "index-",
		ocispec.MediaTypeImageLayerGzip:           "layer-",
		images.MediaTypeDockerSchema2LayerGzip:    "layer-",
		ocispec.MediaTypeImageConfig:              "config-",
		images.MediaTypeDockerSchema2Config:       "config-",
		"application/x-other":                     "unknown-",
	} {
		if got := MakeRefKey(context.Background(), ocispec.Descriptor{MediaType: mt, Digest: d}); got != want+d.String() {
			t.Errorf("%s: %q, want %q", mt, got, want+d.String())
		}
	}
}

// byteFetcher serves blobs from memory, as a plain reader (no Seek).
type byteFetcher map[digest.Digest][]byte

func (f byteFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	b, ok := f[desc.Digest]
	if !ok {
		return nil, errdefs.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func newStore(t *testing.T) content.Store {
	s, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFetchHandlerRefusesOversize(t *testing.T) {
	data := []byte("0123456789")
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(data[:8]), Size: 8}
	store := newStore(t)
	_, err := FetchHandler(store, byteFetcher{desc.Digest: data})(context.Background(), desc)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "more than its 8 bytes") {
		t.Fatalf("oversize: %v", err)
	}
	if _, err := store.Info(context.Background(), desc.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("oversize blob committed: %v", err)
	}
}

func TestFetchHandlerRestartsWithoutSeek(t *testing.T) {
	ctx := context.Background()
	data := bytes.Repeat([]byte("abc"), 1000)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(data), Size: int64(len(data))}
	store := newStore(t)
	// An earlier attempt left half.
	w, err := store.Writer(ctx, content.WithRef(MakeRefKey(ctx, desc)), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[:1500])
	w.Close()
	if _, err := FetchHandler(store, byteFetcher{desc.Digest: data})(ctx, desc); err != nil {
		t.Fatal(err)
	}
	if got, _ := content.ReadBlob(ctx, store, desc); !bytes.Equal(got, data) {
		t.Fatal("blob differs")
	}
}

func TestFetchHandlerWaitsForLockedIngest(t *testing.T) {
	ctx := context.Background()
	data := []byte("shared layer")
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(data), Size: int64(len(data))}
	store := newStore(t)
	w, err := store.Writer(ctx, content.WithRef(MakeRefKey(ctx, desc)), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := FetchHandler(store, byteFetcher{desc.Digest: data})(ctx, desc)
		done <- err
	}()
	// The other fetch finishes the blob; the waiting one then finds it.
	w.Write(data)
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("waiting fetch: %v", err)
	}

	// A lock that is never released ends with the context.
	data2 := []byte("stuck")
	desc2 := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(data2), Size: 5}
	w2, _ := store.Writer(ctx, content.WithRef(MakeRefKey(ctx, desc2)), content.WithDescriptor(desc2))
	defer w2.Close()
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = FetchHandler(store, byteFetcher{desc2.Digest: data2})(cctx, desc2)
	if !errdefs.IsUnavailable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stuck ingest: %v", err)
	}
}

func TestFetchHandlerSchema1(t *testing.T) {
	_, err := FetchHandler(newStore(t), byteFetcher{})(context.Background(), ocispec.Descriptor{MediaType: images.MediaTypeDockerSchema1Manifest, Digest: digest.FromString("x"), Size: 1})
	if !errdefs.IsNotImplemented(err) {
		t.Fatalf("schema 1: %v", err)
	}
}

// recPusher records what is pushed, in order.
type recPusher struct {
	mu      sync.Mutex
	pushed  []digest.Digest
	has     map[digest.Digest]bool
	content map[digest.Digest][]byte
	annots  map[digest.Digest]map[string]string
}

type recWriter struct {
	p    *recPusher
	desc ocispec.Descriptor
	buf  bytes.Buffer
}

func (w *recWriter) Write(b []byte) (int, error) { return w.buf.Write(b) }
func (w *recWriter) Close() error                { return nil }
func (w *recWriter) Digest() digest.Digest       { return digest.FromBytes(w.buf.Bytes()) }
func (w *recWriter) Status() (content.Status, error) {
	return content.Status{Offset: int64(w.buf.Len())}, nil
}
func (w *recWriter) Truncate(int64) error { w.buf.Reset(); return nil }
func (w *recWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	if w.Digest() != expected || int64(w.buf.Len()) != size {
		return errdefs.ErrFailedPrecondition
	}
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	w.p.pushed = append(w.p.pushed, expected)
	w.p.content[expected] = w.buf.Bytes()
	return nil
}

func (p *recPusher) Push(ctx context.Context, desc ocispec.Descriptor) (content.Writer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.annots[desc.Digest] = desc.Annotations
	if p.has[desc.Digest] {
		return nil, errdefs.ErrAlreadyExists
	}
	return &recWriter{p: p, desc: desc}, nil
}

type memStore struct {
	blobs  map[digest.Digest][]byte
	labels map[digest.Digest]map[string]string
}

type readerAt struct{ *bytes.Reader }

func (readerAt) Close() error { return nil }

func (m *memStore) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	b, ok := m.blobs[desc.Digest]
	if !ok {
		return nil, errdefs.ErrNotFound
	}
	return readerAt{bytes.NewReader(b)}, nil
}

func (m *memStore) Info(ctx context.Context, d digest.Digest) (content.Info, error) {
	b, ok := m.blobs[d]
	if !ok {
		return content.Info{}, errdefs.ErrNotFound
	}
	return content.Info{Digest: d, Size: int64(len(b)), Labels: m.labels[d]}, nil
}

func (m *memStore) add(mt string, v any) ocispec.Descriptor {
	b, ok := v.([]byte)
	if !ok {
		b, _ = json.Marshal(v)
	}
	d := digest.FromBytes(b)
	m.blobs[d] = b
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
}

func (m *memStore) image(platform string, layer string) (ocispec.Descriptor, []ocispec.Descriptor) {
	p := platforms.MustParse(platform)
	cfg := m.add(ocispec.MediaTypeImageConfig, ocispec.Image{Platform: p})
	l := m.add(ocispec.MediaTypeImageLayerGzip, []byte(layer))
	mf := m.add(ocispec.MediaTypeImageManifest, ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{l}})
	mf.Platform = &p
	return mf, []ocispec.Descriptor{cfg, l}
}

func TestPushContentOrderAndFilter(t *testing.T) {
	m := &memStore{blobs: map[digest.Digest][]byte{}, labels: map[digest.Digest]map[string]string{}}
	amd, amdBlobs := m.image("linux/amd64", "amd layer")
	arm, armBlobs := m.image("linux/arm64", "arm layer")
	// A nested index, and a layer shared by both.
	inner := m.add(ocispec.MediaTypeImageIndex, ocispec.Index{Manifests: []ocispec.Descriptor{arm}})
	root := m.add(ocispec.MediaTypeImageIndex, ocispec.Index{Manifests: []ocispec.Descriptor{amd, inner}})
	m.labels[amdBlobs[1].Digest] = map[string]string{images.LabelDistributionSource + ".r.io": "lib/a", "other": "x"}

	p := &recPusher{has: map[digest.Digest]bool{amdBlobs[0].Digest: true}, content: map[digest.Digest][]byte{}, annots: map[digest.Digest]map[string]string{}}
	var visited []digest.Digest
	var vmu sync.Mutex
	wrapper := func(h images.Handler) images.Handler {
		return images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			vmu.Lock()
			visited = append(visited, desc.Digest)
			vmu.Unlock()
			return h.Handle(ctx, desc)
		})
	}
	if err := PushContent(context.Background(), p, root, m, semaphore.NewWeighted(2), nil, wrapper); err != nil {
		t.Fatal(err)
	}
	pos := func(d digest.Digest) int { return slices.Index(p.pushed, d) }
	for _, b := range append(amdBlobs[1:], armBlobs...) {
		if pos(b.Digest) < 0 || pos(b.Digest) > pos(amd.Digest) || pos(b.Digest) > pos(arm.Digest) {
			t.Fatalf("blob %s not pushed before the manifests: %v", b.Digest, p.pushed)
		}
	}
	if !(pos(arm.Digest) < pos(inner.Digest) && pos(inner.Digest) < pos(root.Digest) && pos(amd.Digest) < pos(root.Digest)) {
		t.Fatalf("manifests out of order: %v", p.pushed)
	}
	if pos(amdBlobs[0].Digest) >= 0 {
		t.Fatal("content the remote has was pushed")
	}
	if a := p.annots[amdBlobs[1].Digest]; a[images.LabelDistributionSource+".r.io"] != "lib/a" || a["other"] != "" {
		t.Fatalf("annotations given to the pusher: %v", a)
	}
	if len(visited) != 8 {
		t.Fatalf("wrapper saw %d descriptors, want 8", len(visited))
	}

	// Only amd64: the arm manifest and its blobs stay home.
	p = &recPusher{has: map[digest.Digest]bool{}, content: map[digest.Digest][]byte{}, annots: map[digest.Digest]map[string]string{}}
	if err := PushContent(context.Background(), p, root, m, nil, platforms.Only(platforms.MustParse("linux/amd64")), nil); err != nil {
		t.Fatal(err)
	}
	for _, d := range []digest.Digest{arm.Digest, armBlobs[0].Digest, armBlobs[1].Digest} {
		if pos(d) >= 0 {
			t.Fatalf("arm64 content %s pushed: %v", d, p.pushed)
		}
	}
	if pos(amd.Digest) < 0 || pos(root.Digest) < 0 {
		t.Fatalf("amd64 image not pushed: %v", p.pushed)
	}
}

func TestPushContentMissingBlob(t *testing.T) {
	m := &memStore{blobs: map[digest.Digest][]byte{}, labels: map[digest.Digest]map[string]string{}}
	mf, blobs := m.image("linux/amd64", "layer")
	delete(m.blobs, blobs[1].Digest)
	p := &recPusher{has: map[digest.Digest]bool{}, content: map[digest.Digest][]byte{}, annots: map[digest.Digest]map[string]string{}}
	err := PushContent(context.Background(), p, mf, m, nil, nil, nil)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), blobs[1].Digest.String()) {
		t.Fatalf("missing blob: %v", err)
	}
	if slices.Contains(p.pushed, mf.Digest) {
		t.Fatal("manifest pushed although a blob failed")
	}
}
