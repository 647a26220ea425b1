package scheduler

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/metadata"
	"github.com/llitfkitfk/containerd/namespaces"
)

// With the real metadata store: deleting an image gets its blob collected
// without anyone asking, and a synchronous delete waits for that.
func TestSchedulerCollectsMetadata(t *testing.T) {
	dir := t.TempDir()
	backing, err := local.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := metadata.Open(context.Background(), filepath.Join(dir, "meta.db"), backing, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := start(t, db, *DefaultConfig())
	db.SetScheduler(s)

	ctx := namespaces.WithNamespace(context.Background(), "ns")
	is := metadata.NewImageStore(db)
	lm := metadata.NewLeaseManager(db)
	gone := func(d digest.Digest) bool {
		_, err := backing.Info(context.Background(), d)
		return err != nil
	}
	// put pulls an image the way clients do: under a lease until the
	// image holds its content.
	put := func(name string) digest.Digest {
		t.Helper()
		l, err := lm.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		data := []byte("manifest of " + name)
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(data), Size: int64(len(data))}
		if err := content.WriteBlob(leases.WithLease(ctx, l.ID), db.ContentStore(), name, bytes.NewReader(data), desc); err != nil {
			t.Fatal(err)
		}
		if _, err := is.Create(ctx, images.Image{Name: name, Target: desc}); err != nil {
			t.Fatal(err)
		}
		if err := lm.Delete(ctx, l, leases.SynchronousDelete); err != nil {
			t.Fatal(err)
		}
		if gone(desc.Digest) {
			t.Fatalf("blob of image %s collected", name)
		}
		return desc.Digest
	}

	async := put("async")
	if err := is.Delete(ctx, "async"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !gone(async) {
		if time.Now().After(deadline) {
			t.Fatal("blob of a deleted image not collected")
		}
		time.Sleep(10 * time.Millisecond)
	}

	sync := put("sync")
	if err := is.Delete(ctx, "sync", images.SynchronousDelete()); err != nil {
		t.Fatal(err)
	}
	if !gone(sync) {
		t.Error("synchronous delete returned before its blob was collected")
	}
}
