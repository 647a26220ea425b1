package client

import (
	"bytes"
	"context"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
)

// blobFetcher serves blobs from memory, counting how many are being read
// at once.
type blobFetcher struct {
	blobs map[digest.Digest][]byte
	hold  time.Duration // how long each fetch keeps its place

	mu            sync.Mutex
	fetched       []digest.Digest
	inflight, max int
}

func (f *blobFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	f.mu.Lock()
	f.fetched = append(f.fetched, desc.Digest)
	f.inflight++
	f.max = max(f.max, f.inflight)
	f.mu.Unlock()
	time.Sleep(f.hold)
	f.mu.Lock()
	f.inflight--
	f.mu.Unlock()
	b, ok := f.blobs[desc.Digest]
	if !ok {
		return nil, errdefs.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func TestFetchFromLabelsSourceAndLimits(t *testing.T) {
	ctx := testCtx()
	cs := newContentStore(t)
	var layers []ocispec.Descriptor
	blobs := map[digest.Digest][]byte{}
	for i := range 6 {
		b := bytes.Repeat([]byte{byte('a' + i)}, 100)
		d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(b), Size: int64(len(b))}
		blobs[d.Digest] = b
		layers = append(layers, d)
	}
	// One blob is there already, from another repository.
	writeBlobs(t, cs, map[digest.Digest][]byte{layers[0].Digest: blobs[layers[0].Digest]})
	const key = "containerd.io/distribution.source.example.com"
	if _, err := cs.Update(ctx, contentInfo(layers[0].Digest, map[string]string{key: "other/repo"}), "labels."+key); err != nil {
		t.Fatal(err)
	}

	f := &blobFetcher{blobs: blobs, hold: 20 * time.Millisecond}
	h := fetchFrom(cs, f, "example.com/team/app:v1", 2)
	if err := images.Dispatch(ctx, h, nil, layers...); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(f.fetched, layers[0].Digest) {
		t.Error("a blob in the store was fetched again")
	}
	if len(f.fetched) != 5 || f.max > 2 {
		t.Errorf("fetched %d blobs, at most %d at once; want 5, at most 2", len(f.fetched), f.max)
	}
	for i, l := range layers {
		info, err := cs.Info(ctx, l.Digest)
		if err != nil {
			t.Fatal(err)
		}
		want := "team/app"
		if i == 0 {
			want = "other/repo,team/app"
		}
		if got := info.Labels[key]; got != want {
			t.Errorf("layer %d source label %q, want %q", i, got, want)
		}
	}
}

func TestMetadataOfAllPlatforms(t *testing.T) {
	config := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString("c")}
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("l")}
	children := images.HandlerFunc(func(context.Context, ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		return []ocispec.Descriptor{config, layer}, nil
	})
	h := metadataOfAllPlatforms(children, platforms.Only(ocispec.Platform{OS: "linux", Architecture: "amd64"}))
	manifest := func(arch string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Platform: &ocispec.Platform{OS: "linux", Architecture: arch}}
	}
	if kids, _ := h(testCtx(), manifest("amd64")); len(kids) != 2 {
		t.Errorf("the chosen platform's manifest leads to %v, want config and layer", kids)
	}
	if kids, _ := h(testCtx(), manifest("s390x")); len(kids) != 1 || kids[0].Digest != config.Digest {
		t.Errorf("another platform's manifest leads to %v, want its config only", kids)
	}
}

func TestRemoteOptions(t *testing.T) {
	var rc RemoteContext
	for _, o := range []RemoteOpt{WithPlatform("linux/arm64"), WithPlatform("linux/arm64"), WithPlatform("")} {
		if err := o(nil, &rc); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"linux/arm64", platforms.DefaultString()}; !slices.Equal(rc.Platforms, want) {
		t.Errorf("platforms %v, want %v", rc.Platforms, want)
	}
	if err := WithPlatform("linux/arm64/v8/extra")(nil, &rc); !errdefs.IsInvalidArgument(err) {
		t.Errorf("a malformed platform: %v, want InvalidArgument", err)
	}
	if _, err := anyPlatform([]string{"linux/amd64", "no/such/thing/here"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("a malformed platform among others: %v, want InvalidArgument", err)
	}
	m, err := anyPlatform(nil)
	if err != nil || !m.Match(ocispec.Platform{OS: "windows", Architecture: "s390x"}) {
		t.Errorf("no platforms should match all: %v", err)
	}
}
