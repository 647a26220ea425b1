package archive_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/images/archive"
	"github.com/llitfkitfk/containerd/metadata"
	"github.com/llitfkitfk/containerd/namespaces"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestImportSharedBlobs imports one archive into two namespaces of the
// metadata store. In the second, every blob is already in the shared
// store, where an ingest starts out whole: the import must read past the
// archive's copies, not append them to the blob.
func TestImportSharedBlobs(t *testing.T) {
	dir := t.TempDir()
	backing, err := local.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := metadata.Open(context.Background(), filepath.Join(dir, "meta.db"), backing, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cs := db.ContentStore()

	// An archive exported from a store of its own, so its blobs are not
	// in cs before the first import.
	src, err := local.NewStore(filepath.Join(dir, "src"))
	if err != nil {
		t.Fatal(err)
	}
	layer := bytes.Repeat([]byte("layer "), 1000)
	manifest := writeImage(t, src, layer)
	var tarball bytes.Buffer
	if err := archive.Export(context.Background(), src, &tarball, archive.WithManifest(manifest, "example.com/shared:1")); err != nil {
		t.Fatal(err)
	}

	for _, ns := range []string{"a", "b"} {
		ctx := namespaces.WithNamespace(context.Background(), ns)
		idx, err := archive.ImportIndex(ctx, cs, bytes.NewReader(tarball.Bytes()))
		if err != nil {
			t.Fatalf("import into %s: %v", ns, err)
		}
		if _, err := content.ReadBlob(ctx, cs, idx); err != nil {
			t.Fatalf("index in %s: %v", ns, err)
		}
		if _, err := cs.Info(ctx, manifest.Digest); err != nil {
			t.Fatalf("manifest in %s: %v", ns, err)
		}
		statuses, err := cs.ListStatuses(ctx)
		if err != nil || len(statuses) != 0 {
			t.Fatalf("ingests left in %s: %v, %v", ns, statuses, err)
		}
	}
}

// writeImage writes a one-layer image into s and returns its manifest.
func writeImage(t *testing.T, s content.Store, layer []byte) ocispec.Descriptor {
	t.Helper()
	put := func(mt string, p []byte) ocispec.Descriptor {
		d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(p), Size: int64(len(p))}
		if err := content.WriteBlob(context.Background(), s, "w-"+d.Digest.String(), bytes.NewReader(p), d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	l := put(ocispec.MediaTypeImageLayer, layer)
	cfg, _ := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{l.Digest}},
	})
	m, _ := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    put(ocispec.MediaTypeImageConfig, cfg),
		Layers:    []ocispec.Descriptor{l},
	})
	return put(ocispec.MediaTypeImageManifest, m)
}
