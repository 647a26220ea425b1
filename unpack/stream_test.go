package unpack

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/diff/apply"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/remotes"
)

// remoteFetcher serves the blobs of a store, as a registry would, with
// faults: a blob's bytes replaced, or cut off with an error after some.
type remoteFetcher struct {
	src     content.Store
	replace map[digest.Digest][]byte
	dropAt  map[digest.Digest]int // bytes served before the connection drops
}

var errDropped = errors.New("connection dropped")

func (f *remoteFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	p, ok := f.replace[desc.Digest]
	if !ok {
		var err error
		if p, err = content.ReadBlob(ctx, f.src, desc); err != nil {
			return nil, err
		}
	}
	var r io.Reader = bytes.NewReader(p)
	if n, ok := f.dropAt[desc.Digest]; ok {
		r = io.MultiReader(bytes.NewReader(p[:n]), errReader{errDropped})
	}
	return io.NopCloser(r), nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// streamCounter counts how layers are applied: from the fetch's stream
// or from the store.
type streamCounter struct {
	diff.StreamApplier
	mu       sync.Mutex
	streamed map[digest.Digest]int
	stored   map[digest.Digest]int
}

func newStreamCounter(cs content.Store) *streamCounter {
	return &streamCounter{
		StreamApplier: apply.NewFileSystemApplier(cs).(diff.StreamApplier),
		streamed:      map[digest.Digest]int{},
		stored:        map[digest.Digest]int{},
	}
}

func (a *streamCounter) Apply(ctx context.Context, desc ocispec.Descriptor, mounts []mount.Mount, opts ...diff.ApplyOpt) (ocispec.Descriptor, error) {
	a.mu.Lock()
	a.stored[desc.Digest]++
	a.mu.Unlock()
	return a.StreamApplier.Apply(ctx, desc, mounts, opts...)
}

func (a *streamCounter) ApplyStream(ctx context.Context, desc ocispec.Descriptor, r io.Reader, mounts []mount.Mount, opts ...diff.ApplyOpt) (ocispec.Descriptor, error) {
	a.mu.Lock()
	a.streamed[desc.Digest]++
	a.mu.Unlock()
	return a.StreamApplier.ApplyStream(ctx, desc, r, mounts, opts...)
}

// pullRemote pulls img from f into cs through the real fetch handler,
// unpacking on sn (overlay, in parallel, so streamed).
func pullRemote(cs content.Store, img testImage, sn Platform, f remotes.Fetcher) error {
	ctx := context.Background()
	u, err := NewUnpacker(ctx, cs, WithUnpackPlatform(sn))
	if err != nil {
		return err
	}
	h := u.Unpack(images.Handlers(remotes.FetchHandler(cs, f), images.ChildrenHandler(cs)))
	if err := images.Dispatch(ctx, h, nil, img.manifest); err != nil {
		u.Wait()
		return err
	}
	_, err = u.Wait()
	return err
}

func streamPlatform(t *testing.T, cs content.Store) (Platform, *streamCounter) {
	sn, caps := newOverlay(t)
	a := newStreamCounter(cs)
	return Platform{
		Platform:                platformFor("overlayfs", sn, caps, nil).Platform,
		SnapshotterKey:          "overlayfs",
		Snapshotter:             sn,
		Applier:                 a,
		SnapshotterCapabilities: caps,
	}, a
}

// TestStreamApply checks that a pull applies each layer from its
// download, and that the result is the image's tree.
func TestStreamApply(t *testing.T) {
	src := newStore(t)
	img := buildImage(t, src, testLayers(), -1)
	cs := newStore(t)
	p, a := streamPlatform(t, cs)
	if err := pullRemote(cs, img, p, &remoteFetcher{src: src}); err != nil {
		t.Fatal(err)
	}
	for _, l := range img.layers {
		if a.streamed[l.Digest] != 1 || a.stored[l.Digest] != 0 {
			t.Errorf("layer %s: %d applies streamed, %d from the store; want 1 and 0", l.Digest, a.streamed[l.Digest], a.stored[l.Digest])
		}
		info, err := cs.Info(context.Background(), l.Digest)
		if err != nil {
			t.Errorf("layer %s not in the store: %v", l.Digest, err)
		} else if info.Labels[images.LabelUncompressed] == "" {
			t.Errorf("layer %s lacks its uncompressed label", l.Digest)
		}
	}
	chain := chainOf(img.diffIDs)
	checkTree(t, readTree(t, p.Snapshotter, chain[len(chain)-1]))
	if all := snapshotsOf(t, p.Snapshotter); len(all) != len(chain) {
		t.Errorf("snapshots: %s", describe(all))
	}
}

// TestStreamApplyBadBlob checks that a blob that applies cleanly, to the
// diff ID its config names, but is not the blob the manifest names, is
// not unpacked: the stream is applied before the digest can be checked,
// and must not be committed. The blob is a gzip layer with its header's
// modification time changed: same tar, other digest.
func TestStreamApplyBadBlob(t *testing.T) {
	src := newStore(t)
	img := buildImage(t, src, testLayers(), -1)
	bad := img.layers[0]
	p0, err := content.ReadBlob(context.Background(), src, bad)
	if err != nil {
		t.Fatal(err)
	}
	forged := bytes.Clone(p0)
	forged[4] ^= 0xff // MTIME, which gzip readers do not check
	cs := newStore(t)
	p, a := streamPlatform(t, cs)
	err = pullRemote(cs, img, p, &remoteFetcher{src: src, replace: map[digest.Digest][]byte{bad.Digest: forged}})
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), bad.Digest.String()) {
		t.Fatalf("pull: %v, want FailedPrecondition naming %s", err, bad.Digest)
	}
	if a.streamed[bad.Digest] != 1 {
		t.Fatalf("the forged layer was applied %d times from its stream, want 1 (the test tests nothing)", a.streamed[bad.Digest])
	}
	if all := snapshotsOf(t, p.Snapshotter); len(all) != 0 {
		t.Errorf("left behind: %s", describe(all))
	}
	if _, err := cs.Info(context.Background(), bad.Digest); !errdefs.IsNotFound(err) {
		t.Errorf("forged blob: Info %v, want not found", err)
	}
	cfg, _ := cs.Info(context.Background(), img.config.Digest)
	if v, ok := cfg.Labels["containerd.io/gc.ref.snapshot.overlayfs"]; ok {
		t.Errorf("config labelled with snapshot %s", v)
	}
}

// TestStreamApplyTruncated checks that a blob the remote ends early is
// neither stored nor unpacked.
func TestStreamApplyTruncated(t *testing.T) {
	src := newStore(t)
	img := buildImage(t, src, testLayers(), -1)
	short := img.layers[3]
	p0, err := content.ReadBlob(context.Background(), src, short)
	if err != nil {
		t.Fatal(err)
	}
	cs := newStore(t)
	p, _ := streamPlatform(t, cs)
	err = pullRemote(cs, img, p, &remoteFetcher{src: src, replace: map[digest.Digest][]byte{short.Digest: p0[:len(p0)/2]}})
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), short.Digest.String()) {
		t.Fatalf("pull: %v, want an unexpected EOF naming %s", err, short.Digest)
	}
	if all := snapshotsOf(t, p.Snapshotter); len(all) != 0 {
		t.Errorf("left behind: %s", describe(all))
	}
	if _, err := cs.Info(context.Background(), short.Digest); !errdefs.IsNotFound(err) {
		t.Errorf("truncated blob: Info %v, want not found", err)
	}
}

// TestStreamApplyResume checks that a layer whose download dropped is
// resumed by the retry, which applies it from the store, since its
// stream no longer starts at the first byte.
func TestStreamApplyResume(t *testing.T) {
	src := newStore(t)
	img := buildImage(t, src, testLayers(), -1)
	dropped := img.layers[3]
	cs := newStore(t)
	p, a := streamPlatform(t, cs)
	f := &remoteFetcher{src: src, dropAt: map[digest.Digest]int{dropped.Digest: int(dropped.Size / 2)}}
	if err := pullRemote(cs, img, p, f); !errors.Is(err, errDropped) {
		t.Fatalf("pull: %v, want %v", err, errDropped)
	}
	if all := snapshotsOf(t, p.Snapshotter); len(all) != 0 {
		t.Errorf("left behind: %s", describe(all))
	}
	st, err := cs.Status(context.Background(), remotes.MakeRefKey(context.Background(), dropped))
	if err != nil || st.Offset != dropped.Size/2 {
		t.Fatalf("ingest after the drop: %+v, %v; want %d bytes kept", st, err, dropped.Size/2)
	}

	f.dropAt = nil
	if err := pullRemote(cs, img, p, &resumer{f}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if a.stored[dropped.Digest] != 1 {
		t.Errorf("resumed layer applied %d times from the store, want 1", a.stored[dropped.Digest])
	}
	chain := chainOf(img.diffIDs)
	checkTree(t, readTree(t, p.Snapshotter, chain[len(chain)-1]))
}

// resumer serves seekable bodies, so that an ingest resumes.
type resumer struct{ f *remoteFetcher }

func (r *resumer) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	p, err := content.ReadBlob(ctx, r.f.src, desc)
	if err != nil {
		return nil, err
	}
	return struct {
		io.ReadSeeker
		io.Closer
	}{bytes.NewReader(p), io.NopCloser(nil)}, nil
}

// TestLayersFetchedWithConfig checks that a manifest's layers are fetched
// alongside its config, not after: here the config's fetch waits for a
// layer's to start.
func TestLayersFetchedWithConfig(t *testing.T) {
	src := newStore(t)
	img := buildImage(t, src, testLayers(), -1)
	cs := newStore(t)
	p, a := streamPlatform(t, cs)
	fetch := remotes.FetchHandler(cs, &remoteFetcher{src: src})
	layerStarted := make(chan struct{})
	var once sync.Once
	h := images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		switch {
		case images.IsLayerType(desc.MediaType):
			once.Do(func() { close(layerStarted) })
		case images.IsConfigType(desc.MediaType):
			select {
			case <-layerStarted:
			case <-time.After(10 * time.Second):
				return nil, errors.New("no layer fetch started before the config was fetched")
			}
		}
		return fetch(ctx, desc)
	})
	u, err := NewUnpacker(context.Background(), cs, WithUnpackPlatform(p))
	if err != nil {
		t.Fatal(err)
	}
	if err := images.Dispatch(context.Background(), u.Unpack(images.Handlers(h, images.ChildrenHandler(cs))), nil, img.manifest); err != nil {
		u.Wait()
		t.Fatal(err)
	}
	if _, err := u.Wait(); err != nil {
		t.Fatal(err)
	}
	chain := chainOf(img.diffIDs)
	checkTree(t, readTree(t, p.Snapshotter, chain[len(chain)-1]))
	for _, l := range img.layers {
		if a.streamed[l.Digest] != 1 {
			t.Errorf("layer %s applied %d times from its stream, want 1", l.Digest, a.streamed[l.Digest])
		}
	}
}

// TestConfigFetchFails checks that layer fetches started with the
// manifest, waiting to stream into applies that will never come (the
// config cannot be fetched), are stopped: Wait returns, with nothing
// unpacked.
func TestConfigFetchFails(t *testing.T) {
	src := newStore(t)
	img := buildImage(t, src, testLayers(), -1)
	cs := newStore(t)
	p, _ := streamPlatform(t, cs)
	fetch := remotes.FetchHandler(cs, &remoteFetcher{src: src})
	boom := errors.New("config unavailable")
	h := images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if images.IsConfigType(desc.MediaType) {
			return nil, boom
		}
		return fetch(ctx, desc)
	})
	u, err := NewUnpacker(context.Background(), cs, WithUnpackPlatform(p))
	if err != nil {
		t.Fatal(err)
	}
	if err := images.Dispatch(context.Background(), u.Unpack(images.Handlers(h, images.ChildrenHandler(cs))), nil, img.manifest); !errors.Is(err, boom) {
		t.Fatalf("Dispatch: %v, want %v", err, boom)
	}
	done := make(chan struct{})
	go func() { u.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Wait did not return: layer fetches left waiting for their applies")
	}
	if all := snapshotsOf(t, p.Snapshotter); len(all) != 0 {
		t.Errorf("left behind: %s", describe(all))
	}
}

// TestStreamRepull checks that a pull of an image whose chain is
// unpacked already applies nothing, even when its layer blobs are gone
// from the store and their fetches, started with the manifest, have
// taken their streams.
func TestStreamRepull(t *testing.T) {
	src := newStore(t)
	img := buildImage(t, src, testLayers(), -1)
	cs := newStore(t)
	p, a := streamPlatform(t, cs)
	if err := pullRemote(cs, img, p, &remoteFetcher{src: src}); err != nil {
		t.Fatal(err)
	}
	for _, l := range img.layers {
		if err := cs.Delete(context.Background(), l.Digest); err != nil {
			t.Fatal(err)
		}
	}
	if err := pullRemote(cs, img, p, &remoteFetcher{src: src}); err != nil {
		t.Fatalf("re-pull: %v", err)
	}
	for _, l := range img.layers {
		if a.streamed[l.Digest] != 1 || a.stored[l.Digest] != 0 {
			t.Errorf("layer %s: applied %d times streamed, %d from the store; want only the first pull's", l.Digest, a.streamed[l.Digest], a.stored[l.Digest])
		}
	}
	chain := chainOf(img.diffIDs)
	if all := snapshotsOf(t, p.Snapshotter); len(all) != len(chain) {
		t.Errorf("snapshots: %s", describe(all))
	}
}
