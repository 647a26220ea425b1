package client

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/namespaces"
)

func newContentStore(t *testing.T) content.Store {
	t.Helper()
	cs, err := local.NewLabeledStore(t.TempDir(), testutil.NewMemLabels())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// memImages is an images.Store in memory, with the daemon's rules for
// Create (AlreadyExists) and Update (NotFound; "target" and "labels"
// field paths).
type memImages struct {
	mu sync.Mutex
	m  map[string]images.Image
}

func newMemImages() *memImages { return &memImages{m: map[string]images.Image{}} }

func (s *memImages) Get(_ context.Context, name string) (images.Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	img, ok := s.m[name]
	if !ok {
		return images.Image{}, fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
	}
	return img, nil
}

func (s *memImages) List(context.Context, ...string) ([]images.Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []images.Image
	for _, img := range s.m {
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (s *memImages) Create(_ context.Context, img images.Image) (images.Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[img.Name]; ok {
		return images.Image{}, fmt.Errorf("image %q: %w", img.Name, errdefs.ErrAlreadyExists)
	}
	s.m[img.Name] = img
	return img, nil
}

func (s *memImages) Update(_ context.Context, img images.Image, fields ...string) (images.Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.m[img.Name]
	if !ok {
		return images.Image{}, fmt.Errorf("image %q: %w", img.Name, errdefs.ErrNotFound)
	}
	if len(fields) == 0 {
		fields = []string{"target", "labels"}
	}
	for _, f := range fields {
		switch f {
		case "target":
			cur.Target = img.Target
		case "labels":
			cur.Labels = img.Labels
		default:
			return images.Image{}, fmt.Errorf("field %q: %w", f, errdefs.ErrNotImplemented)
		}
	}
	s.m[img.Name] = cur
	return cur, nil
}

func (s *memImages) Delete(_ context.Context, name string, _ ...images.DeleteOpt) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, name)
	return nil
}

func testCtx() context.Context { return namespaces.WithNamespace(context.Background(), "test") }

// layoutTar is an OCI image-layout archive of blobs whose index.json
// lists entries.
func layoutTar(t *testing.T, entries []ocispec.Descriptor, blobs map[digest.Digest][]byte) *bytes.Reader {
	t.Helper()
	idx, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: entries})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	file := func(name string, p []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(p)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(p)
	}
	file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	file("index.json", idx)
	ds := make([]string, 0, len(blobs))
	for d := range blobs {
		ds = append(ds, d.String())
	}
	sort.Strings(ds)
	for _, d := range ds {
		dg := digest.Digest(d)
		file("blobs/sha256/"+dg.Encoded(), blobs[dg])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b.Bytes())
}

// twoPlatforms is an index of an image for this machine and one for
// another platform, each with a layer of its own.
func twoPlatforms(t *testing.T) (index testutil.Image, host, other testutil.Image) {
	t.Helper()
	hp := testutil.HostPlatform()
	op := ocispec.Platform{OS: "linux", Architecture: "arm64"}
	if hp.Architecture == "arm64" {
		op.Architecture = "amd64"
	}
	var err error
	if host, err = testutil.NewImage(hp, ocispec.ImageConfig{}, testutil.TarLayer(testutil.Layer{"host": "h"}), testutil.TarLayer(testutil.Layer{"top": "t"})); err != nil {
		t.Fatal(err)
	}
	if other, err = testutil.NewImage(op, ocispec.ImageConfig{}, testutil.TarLayer(testutil.Layer{"other": "o"})); err != nil {
		t.Fatal(err)
	}
	if index, err = testutil.NewIndex(host, other); err != nil {
		t.Fatal(err)
	}
	return index, host, other
}

// writeBlobs puts blobs into cs.
func writeBlobs(t *testing.T, cs content.Store, blobs map[digest.Digest][]byte) {
	t.Helper()
	for d, b := range blobs {
		if err := content.WriteBlob(testCtx(), cs, d.String(), bytes.NewReader(b), ocispec.Descriptor{Digest: d, Size: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
	}
}

func readJSONBlob(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func cloneBlobs(m map[digest.Digest][]byte) map[digest.Digest][]byte { return maps.Clone(m) }

// mustConfig is the config descriptor of a single-platform image.
func mustConfig(t *testing.T, img testutil.Image) ocispec.Descriptor {
	t.Helper()
	var m ocispec.Manifest
	readJSONBlob(t, img.Blobs[img.Root.Digest], &m)
	return m.Config
}

func contentInfo(d digest.Digest, labels map[string]string) content.Info {
	return content.Info{Digest: d, Labels: labels}
}
