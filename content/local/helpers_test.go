package local

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
)

// blob returns n deterministic pseudo-random bytes and their descriptor.
func blob(n int, seed uint64) ([]byte, ocispec.Descriptor) {
	p := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(p)
	return p, ocispec.Descriptor{Digest: digest.FromBytes(p), Size: int64(n)}
}

func newStore(t testing.TB) (content.Store, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	s, err := NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

func openWriter(t testing.TB, s content.Store, ref string, desc ocispec.Descriptor) content.Writer {
	t.Helper()
	w, err := s.Writer(context.Background(), content.WithRef(ref), content.WithDescriptor(desc))
	if err != nil {
		t.Fatalf("Writer(%q): %v", ref, err)
	}
	return w
}

func write(t testing.TB, w io.Writer, p []byte) {
	t.Helper()
	if n, err := w.Write(p); err != nil || n != len(p) {
		t.Fatalf("Write: %d, %v; want %d", n, err, len(p))
	}
}

// commit writes p whole under ref and commits it.
func commit(t testing.TB, s content.Store, ref string, p []byte, desc ocispec.Descriptor, opts ...content.Opt) {
	t.Helper()
	w := openWriter(t, s, ref, desc)
	defer w.Close()
	write(t, w, p)
	if err := w.Commit(context.Background(), desc.Size, desc.Digest, opts...); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func checkBlob(t testing.TB, s content.Store, want []byte) {
	t.Helper()
	desc := ocispec.Descriptor{Digest: digest.FromBytes(want)}
	got, err := content.ReadBlob(context.Background(), s, desc)
	if err != nil {
		t.Fatalf("ReadBlob(%s): %v", desc.Digest, err)
	}
	if string(got) != string(want) {
		t.Fatalf("blob %s: read %d bytes differing from the %d written", desc.Digest, len(got), len(want))
	}
}

// blobFiles lists what is under blobs/, to see that nothing partial shows.
func blobFiles(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(root, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func wantErr(t testing.TB, err, kind error, substr string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error %v, want %v", err, kind)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Fatalf("error %q does not mention %q", err, substr)
	}
}

// memLabels is a LabelStore in memory, for tests of labeled stores.
type memLabels struct {
	mu sync.Mutex
	m  map[digest.Digest]map[string]string
}

func (ls *memLabels) Get(d digest.Digest) (map[string]string, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return clone(ls.m[d]), nil
}

func (ls *memLabels) Set(d digest.Digest, labels map[string]string) error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.m == nil {
		ls.m = map[digest.Digest]map[string]string{}
	}
	ls.m[d] = clone(labels)
	return nil
}

func (ls *memLabels) Update(d digest.Digest, update map[string]string) (map[string]string, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.m == nil {
		ls.m = map[digest.Digest]map[string]string{}
	}
	labels := ls.m[d]
	if labels == nil {
		labels = map[string]string{}
		ls.m[d] = labels
	}
	for k, v := range update {
		if v == "" {
			delete(labels, k)
		} else {
			labels[k] = v
		}
	}
	return clone(labels), nil
}

func clone(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func bytesReader(p []byte) io.Reader { return bytes.NewReader(p) }
