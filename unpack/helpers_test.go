package unpack

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llitfkitfk/containerd/internal/testutil"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/snapshots"
)

func newStore(t testing.TB) content.Store {
	t.Helper()
	cs, err := local.NewLabeledStore(t.TempDir(), testutil.NewMemLabels())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// entry is a tar entry of a test layer: a directory if name ends in "/",
// else a file holding data.
type entry struct {
	name string
	data string
}

type testLayer struct {
	entries []entry
	gzip    bool
}

type testImage struct {
	manifest ocispec.Descriptor
	config   ocispec.Descriptor
	layers   []ocispec.Descriptor
	diffIDs  []digest.Digest
}

func tarOf(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Unix(1700000000, 0)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, ModTime: mt, Typeflag: tar.TypeReg, Size: int64(len(e.data))}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeBlob(t testing.TB, cs content.Store, mediaType string, p []byte) ocispec.Descriptor {
	t.Helper()
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(p), Size: int64(len(p))}
	if err := content.WriteBlob(context.Background(), cs, desc.Digest.String(), bytes.NewReader(p), desc); err != nil {
		t.Fatal(err)
	}
	return desc
}

// buildImage writes an image of layers into cs. badDiffID, if >= 0, is a
// layer whose diff ID the config gets wrong.
func buildImage(t testing.TB, cs content.Store, layers []testLayer, badDiffID int) testImage {
	t.Helper()
	var img testImage
	for i, l := range layers {
		raw := tarOf(t, l.entries)
		diffID := digest.FromBytes(raw)
		mt := ocispec.MediaTypeImageLayer
		blob := raw
		if l.gzip {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(raw)
			zw.Close()
			blob, mt = buf.Bytes(), ocispec.MediaTypeImageLayerGzip
		}
		if i == badDiffID {
			diffID = digest.FromString("not this layer")
		}
		img.layers = append(img.layers, writeBlob(t, cs, mt, blob))
		img.diffIDs = append(img.diffIDs, diffID)
	}
	p := platforms.DefaultSpec()
	config, _ := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: img.diffIDs},
	})
	img.config = writeBlob(t, cs, ocispec.MediaTypeImageConfig, config)
	manifest, _ := json.Marshal(ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    img.config,
		Layers:    img.layers,
	})
	img.manifest = writeBlob(t, cs, ocispec.MediaTypeImageManifest, manifest)
	return img
}

// chainOf computes the chain IDs independently of the unpacker: sha256
// of "<parent chain ID> <diff ID>".
func chainOf(diffIDs []digest.Digest) []string {
	var out []string
	for i, d := range diffIDs {
		if i == 0 {
			out = append(out, d.String())
			continue
		}
		sum := sha256.Sum256([]byte(out[i-1] + " " + d.String()))
		out = append(out, "sha256:"+hex.EncodeToString(sum[:]))
	}
	return out
}

// testLayers is an image with gzip and plain layers, a whiteout of a
// parent's file and an opaque directory.
func testLayers() []testLayer {
	return []testLayer{
		{gzip: true, entries: []entry{
			{"etc/", ""}, {"etc/a", "a0"}, {"etc/b", "b0"},
			{"opq/", ""}, {"opq/x", "x"}, {"bin/", ""}, {"bin/sh", "sh"},
		}},
		{entries: []entry{
			{"etc/", ""}, {"etc/a", "a1"}, {"etc/.wh.b", ""}, {"l1", "1"},
		}},
		{gzip: true, entries: []entry{
			{"opq/", ""}, {"opq/.wh..wh..opq", ""}, {"opq/y", "y"},
		}},
		{gzip: true, entries: []entry{
			{"data/", ""}, {"data/f", strings.Repeat("data", 4096)},
		}},
	}
}

// wantFiles is the merged tree of testLayers: path to content, "/" for a
// directory.
var wantFiles = map[string]string{
	"etc": "/", "etc/a": "a1", "opq": "/", "opq/y": "y", "bin": "/", "bin/sh": "sh",
	"l1": "1", "data": "/", "data/f": strings.Repeat("data", 4096),
}

// fetcher stands in for the fetch handler: the content is local, and each
// layer's "fetch" waits for its turn in order, or for release.
type fetcher struct {
	mu       sync.Mutex
	cond     *sync.Cond
	order    []digest.Digest // layers in the order their fetches end
	next     int
	release  func(d digest.Digest) // called after a layer's fetch, if set
	waitTurn func(d digest.Digest) // called before a layer's fetch ends, if set
	fetched  map[digest.Digest]int
	inflight int
	maxIn    int
	// hang makes each fetch wait for its cancellation (20s at most),
	// counted in cancelled.
	hang      bool
	cancelled int
}

func newFetcher(order []digest.Digest) *fetcher {
	f := &fetcher{order: order, fetched: map[digest.Digest]int{}}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (f *fetcher) Handle(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if !images.IsLayerType(desc.MediaType) {
		return nil, nil
	}
	f.mu.Lock()
	f.inflight++
	f.maxIn = max(f.maxIn, f.inflight)
	f.fetched[desc.Digest]++
	f.mu.Unlock()
	if f.waitTurn != nil {
		f.waitTurn(desc.Digest)
	}
	if f.hang {
		select {
		case <-ctx.Done():
			f.mu.Lock()
			f.cancelled++
			f.inflight--
			f.mu.Unlock()
			return nil, ctx.Err()
		case <-time.After(20 * time.Second):
		}
	}
	f.mu.Lock()
	if f.order != nil {
		for f.next < len(f.order) && f.order[f.next] != desc.Digest {
			f.cond.Wait()
		}
		f.next++
		f.cond.Broadcast()
	}
	f.inflight--
	f.mu.Unlock()
	if f.release != nil {
		f.release(desc.Digest)
	}
	return nil, nil
}

func (f *fetcher) count(d digest.Digest) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetched[d]
}

// countingApplier counts Apply calls and how many run at once. With
// waitFor > 1, each Apply waits (a while at most) until that many are in
// flight, so that an unpacker that applies in parallel shows it.
type countingApplier struct {
	diff.Applier
	waitFor int

	mu       sync.Mutex
	calls    int
	inflight int
	maxIn    int
	reached  chan struct{}
	closed   bool
	started  func(d digest.Digest)
}

func (a *countingApplier) Apply(ctx context.Context, desc ocispec.Descriptor, mounts []mount.Mount, opts ...diff.ApplyOpt) (ocispec.Descriptor, error) {
	a.mu.Lock()
	a.calls++
	a.inflight++
	a.maxIn = max(a.maxIn, a.inflight)
	if a.reached == nil {
		a.reached = make(chan struct{})
	}
	if a.inflight == a.waitFor && !a.closed {
		close(a.reached)
		a.closed = true
	}
	reached := a.reached
	a.mu.Unlock()
	if a.started != nil {
		a.started(desc.Digest)
	}
	if a.waitFor > 1 {
		select {
		case <-reached:
		case <-time.After(20 * time.Second): // a serial unpacker: let it go on, and fail
		case <-ctx.Done():
		}
	}
	defer func() {
		a.mu.Lock()
		a.inflight--
		a.mu.Unlock()
	}()
	return a.Applier.Apply(ctx, desc, mounts, opts...)
}

func (a *countingApplier) stats() (calls, maxIn int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls, a.maxIn
}

// snapshotsOf lists the snapshots of sn by name.
func snapshotsOf(t testing.TB, sn snapshots.Snapshotter) map[string]snapshots.Info {
	t.Helper()
	all := map[string]snapshots.Info{}
	err := sn.Walk(context.Background(), func(_ context.Context, info snapshots.Info) error {
		all[info.Name] = info
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func describe(all map[string]snapshots.Info) string {
	var b strings.Builder
	for name, info := range all {
		fmt.Fprintf(&b, "%s (%s, parent %q); ", name, info.Kind, info.Parent)
	}
	return b.String()
}
