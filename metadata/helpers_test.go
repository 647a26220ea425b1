package metadata

import (
	"bytes"
	"context"
	"maps"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/namespaces"
)

// openContentDB opens a fresh database over a fresh local content store and
// returns both; the store is the backing one, without namespaces.
func openContentDB(t *testing.T) (*DB, content.Store) {
	t.Helper()
	dir := t.TempDir()
	backing, err := local.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(context.Background(), filepath.Join(dir, "meta.db"), backing, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, backing
}

func nsContext(ns string) context.Context {
	return namespaces.WithNamespace(context.Background(), ns)
}

func descOf(data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType: "application/octet-stream",
		Digest:    digest.FromBytes(data),
		Size:      int64(len(data)),
	}
}

// writeBlob commits data to cs under ctx, as a client would.
func writeBlob(t *testing.T, ctx context.Context, cs content.Store, data []byte, labels map[string]string) ocispec.Descriptor {
	t.Helper()
	desc := descOf(data)
	ref := "ref-" + desc.Digest.Encoded()[:12]
	if err := content.WriteBlob(ctx, cs, ref, bytes.NewReader(data), desc, content.WithLabels(labels)); err != nil {
		t.Fatalf("write blob %q: %v", data, err)
	}
	return desc
}

// inBacking reports whether the backing store holds the blob.
func inBacking(t *testing.T, backing content.Store, dgst digest.Digest) bool {
	t.Helper()
	_, err := backing.Info(context.Background(), dgst)
	if err != nil && !errdefs.IsNotFound(err) {
		t.Fatalf("backing Info(%v): %v", dgst, err)
	}
	return err == nil
}

// visible reports whether ctx's namespace sees the blob, through Info and
// ReaderAt alike.
func visible(t *testing.T, ctx context.Context, cs content.Store, desc ocispec.Descriptor) bool {
	t.Helper()
	_, ierr := cs.Info(ctx, desc.Digest)
	ra, rerr := cs.ReaderAt(ctx, desc)
	if rerr == nil {
		ra.Close()
	}
	for _, err := range []error{ierr, rerr} {
		if err != nil && !errdefs.IsNotFound(err) {
			t.Fatalf("%v: %v", desc.Digest, err)
		}
	}
	if (ierr == nil) != (rerr == nil) {
		t.Fatalf("%v: Info says %v, ReaderAt %v", desc.Digest, ierr, rerr)
	}
	return ierr == nil
}

func walkDigests(t *testing.T, ctx context.Context, cs content.Store, fs ...string) []digest.Digest {
	t.Helper()
	var ds []digest.Digest
	if err := cs.Walk(ctx, func(info content.Info) error {
		ds = append(ds, info.Digest)
		return nil
	}, fs...); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return ds
}

func createLease(t *testing.T, ctx context.Context, lm leases.Manager, opts ...leases.Opt) leases.Lease {
	t.Helper()
	l, err := lm.Create(ctx, opts...)
	if err != nil {
		t.Fatalf("create lease: %v", err)
	}
	return l
}

func assertErr(t *testing.T, what string, err error, is func(error) bool, want string) {
	t.Helper()
	if !is(err) {
		t.Errorf("%s = %v, want %s", what, err, want)
	}
}

func labelsEqual(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !maps.Equal(got, want) {
		t.Errorf("%s labels = %v, want %v", what, got, want)
	}
}
