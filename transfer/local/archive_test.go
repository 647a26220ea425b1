package local

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/remotes"
	"github.com/llitfkitfk/containerd/transfer"
)

// fakeArchive is an ImageImporter and ImageExporter over a map of blobs
// and an index naming its images, as an OCI archive would hold them.
type fakeArchive struct {
	blobs map[digest.Digest][]byte
	index ocispec.Descriptor
}

func (a *fakeArchive) Import(ctx context.Context, cs content.Store) (ocispec.Descriptor, error) {
	for d, b := range a.blobs {
		desc := ocispec.Descriptor{Digest: d, Size: int64(len(b))}
		if err := content.WriteBlob(ctx, cs, "import-"+d.String(), bytes.NewReader(b), desc); err != nil && !errdefs.IsAlreadyExists(err) {
			return ocispec.Descriptor{}, err
		}
	}
	return a.index, nil
}

// Export copies every blob of imgs and writes an index naming them.
func (a *fakeArchive) Export(ctx context.Context, cs content.Store, imgs []images.Image) error {
	a.blobs = map[digest.Digest][]byte{}
	var mu sync.Mutex
	copyBlob := images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		b, err := content.ReadBlob(ctx, cs, desc)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		a.blobs[desc.Digest] = b
		mu.Unlock()
		return images.Children(ctx, cs, desc)
	})
	var idx ocispec.Index
	idx.SchemaVersion = 2
	idx.MediaType = ocispec.MediaTypeImageIndex
	for _, img := range imgs {
		if err := images.Walk(ctx, copyBlob, img.Target); err != nil {
			return err
		}
		d := img.Target
		d.Annotations = map[string]string{"io.containerd.image.name": img.Name}
		idx.Manifests = append(idx.Manifests, d)
	}
	b, _ := json.Marshal(idx)
	a.index = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(b), Size: int64(len(b))}
	a.blobs[a.index.Digest] = b
	return nil
}

func archiveOf(img *testImage, names ...string) *fakeArchive {
	a := &fakeArchive{blobs: map[digest.Digest][]byte{}}
	for d, b := range img.blobs {
		a.blobs[d] = b
	}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for _, n := range names {
		d := img.root
		d.Annotations = map[string]string{"io.containerd.image.name": n}
		idx.Manifests = append(idx.Manifests, d)
	}
	b, _ := json.Marshal(idx)
	a.index = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(b), Size: int64(len(b))}
	a.blobs[a.index.Digest] = b
	return a
}

// Import records each image the archive names; tag gives one another
// name; export writes them out again, and that archive imports into
// another daemon as the same images.
func TestImportTagExportRoundTrip(t *testing.T) {
	e := newEnv(t)
	img := newImage(t, []ocispec.Platform{host}, false, twoLayers()...)
	var ev events
	if err := e.svc.Transfer(e.ctx, archiveOf(img, "a:1", "b:1"), &fakeStore{}, transfer.WithProgress(ev.record)); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a:1", "b:1"} {
		got, err := e.is.Get(e.ctx, n)
		if err != nil {
			t.Fatalf("imported image %s: %v", n, err)
		}
		if got.Target.Digest != img.root.Digest {
			t.Errorf("%s targets %s, want %s", n, got.Target.Digest, img.root.Digest)
		}
	}
	if all := ev.all(); all[0].Event != "Importing" || all[len(all)-1].Event != "Completed import" {
		t.Errorf("import events %+v", all)
	}
	e.noLeases(t)

	if err := e.svc.Transfer(e.ctx, &fakeStore{name: "a:1"}, &fakeStore{name: "c:2"}); err != nil {
		t.Fatalf("tag: %v", err)
	}
	if got, err := e.is.Get(e.ctx, "c:2"); err != nil || got.Target.Digest != img.root.Digest {
		t.Fatalf("tagged image: %+v, %v", got, err)
	}
	if err := e.svc.Transfer(e.ctx, &fakeStore{name: "missing:1"}, &fakeStore{name: "d:1"}); !errdefs.IsNotFound(err) {
		t.Errorf("tag of a missing image: %v, want NotFound", err)
	}

	out := &fakeArchive{}
	if err := e.svc.Transfer(e.ctx, imageList{"a:1", "c:2"}, out); err != nil {
		t.Fatalf("export: %v", err)
	}
	if len(out.blobs) != len(img.blobs)+1 {
		t.Errorf("exported %d blobs, want the image's %d and an index", len(out.blobs), len(img.blobs))
	}

	other := newEnv(t)
	if err := other.svc.Transfer(other.ctx, out, &fakeStore{}); err != nil {
		t.Fatalf("re-import: %v", err)
	}
	for _, n := range []string{"a:1", "c:2"} {
		if got, err := other.is.Get(other.ctx, n); err != nil || got.Target.Digest != img.root.Digest {
			t.Errorf("re-imported %s: %+v, %v", n, got, err)
		}
	}
}

// imageList is an ImageLookup of images by name.
type imageList []string

func (l imageList) Get(ctx context.Context, is images.Store) (images.Image, error) {
	return is.Get(ctx, l[0])
}

func (l imageList) Lookup(ctx context.Context, is images.Store) ([]images.Image, error) {
	var out []images.Image
	for _, n := range l {
		img, err := is.Get(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

// An archive missing a layer its manifest names records no image.
func TestImportIncompleteArchive(t *testing.T) {
	e := newEnv(t)
	img := newImage(t, []ocispec.Platform{host}, false, twoLayers()...)
	a := archiveOf(img, "a:1")
	delete(a.blobs, img.layers[0][1].Digest)
	err := e.svc.Transfer(e.ctx, a, &fakeStore{})
	if !errdefs.IsNotFound(err) {
		t.Fatalf("import of an incomplete archive: %v, want NotFound", err)
	}
	if _, err := e.is.Get(e.ctx, "a:1"); !errdefs.IsNotFound(err) {
		t.Errorf("image recorded: %v", err)
	}
	e.noLeases(t)
}

func TestImportUnpacks(t *testing.T) {
	e := newEnv(t)
	img := newImage(t, []ocispec.Platform{host}, false, twoLayers()...)
	dst := &fakeStore{unpacks: []transfer.UnpackConfiguration{{Platform: host}}}
	if err := e.svc.Transfer(e.ctx, archiveOf(img, "a:1"), dst); err != nil {
		t.Fatal(err)
	}
	checkUnpacked(t, e, img.diffIDs[0], "etc/first", "one for "+platforms.Format(host))
}

// recordingPusher is an ImagePusher that records the order in which
// blobs are committed.
type recordingPusher struct {
	mu       sync.Mutex
	have     map[digest.Digest]bool // already on the remote
	order    []digest.Digest
	received map[digest.Digest][]byte
}

func (p *recordingPusher) String() string { return "recording pusher" }

func (p *recordingPusher) Pusher(ctx context.Context, desc ocispec.Descriptor) (remotes.Pusher, error) {
	return p, nil
}

func (p *recordingPusher) Push(ctx context.Context, desc ocispec.Descriptor) (content.Writer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.have[desc.Digest] {
		return nil, fmt.Errorf("%s: %w", desc.Digest, errdefs.ErrAlreadyExists)
	}
	return &memWriter{p: p, desc: desc}, nil
}

type memWriter struct {
	p    *recordingPusher
	desc ocispec.Descriptor
	buf  bytes.Buffer
}

func (w *memWriter) Write(b []byte) (int, error) { return w.buf.Write(b) }
func (w *memWriter) Close() error                { return nil }
func (w *memWriter) Digest() digest.Digest       { return digest.FromBytes(w.buf.Bytes()) }
func (w *memWriter) Truncate(int64) error        { w.buf.Reset(); return nil }
func (w *memWriter) Status() (content.Status, error) {
	return content.Status{Offset: int64(w.buf.Len()), Total: w.desc.Size}, nil
}
func (w *memWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	if expected != "" && w.Digest() != expected {
		return fmt.Errorf("got %s, want %s: %w", w.Digest(), expected, errdefs.ErrFailedPrecondition)
	}
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	w.p.order = append(w.p.order, w.desc.Digest)
	w.p.received[w.desc.Digest] = w.buf.Bytes()
	return nil
}

func TestPushChildrenFirst(t *testing.T) {
	e := newEnv(t)
	img := newImage(t, []ocispec.Platform{host, other}, true, twoLayers()...)
	if err := e.svc.Transfer(e.ctx, archiveOf(img, imageName), &fakeStore{}); err != nil {
		t.Fatal(err)
	}
	present := img.layers[0][0].Digest
	p := &recordingPusher{have: map[digest.Digest]bool{present: true}, received: map[digest.Digest][]byte{}}
	var ev events
	if err := e.svc.Transfer(e.ctx, &fakeStore{name: imageName}, p, transfer.WithProgress(ev.record)); err != nil {
		t.Fatal(err)
	}
	pos := map[digest.Digest]int{present: -1}
	for i, d := range p.order {
		pos[d] = i
	}
	for d, b := range img.blobs {
		if d == present {
			continue
		}
		if !bytes.Equal(p.received[d], b) {
			t.Errorf("blob %s not pushed intact", d)
		}
	}
	// Every parent comes after all its children.
	for _, parent := range append([]ocispec.Descriptor{img.root}, img.manifest...) {
		kids, err := images.Children(e.ctx, e.cs, parent)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range kids {
			if pos[k.Digest] >= pos[parent.Digest] {
				t.Errorf("%s pushed before its child %s: order %v", parent.Digest, k.Digest, p.order)
			}
		}
	}
	var seq []string
	for _, pr := range ev.of(refKey(img.layers[0][0])) {
		seq = append(seq, pr.Event)
	}
	if len(seq) == 0 || seq[len(seq)-1] != "already exists" {
		t.Errorf("layer on the remote: events %v, want to end in \"already exists\"", seq)
	}
	seq = nil
	for _, pr := range ev.of(refKey(img.root)) {
		seq = append(seq, pr.Event)
	}
	if len(seq) == 0 || seq[0] != "waiting" || seq[len(seq)-1] != "complete" {
		t.Errorf("index push events %v", seq)
	}
	if all := ev.all(); all[len(all)-1].Event != "Completed push to recording pusher" {
		t.Errorf("last push event %+v", all[len(all)-1])
	}
}
