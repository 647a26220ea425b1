package content_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/errdefs"
)

var ctx = context.Background()

func testBlob(n int) ([]byte, ocispec.Descriptor) {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i * 7 / 3)
	}
	return p, ocispec.Descriptor{Digest: digest.FromBytes(p), Size: int64(n)}
}

// countingWriter counts the bytes a resumed WriteBlob really writes.
type countingWriter struct {
	content.Writer
	n *int64
}

func (w countingWriter) Write(p []byte) (int, error) {
	*w.n += int64(len(p))
	return w.Writer.Write(p)
}

type countingIngester struct {
	content.Ingester
	n int64
}

func (c *countingIngester) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	w, err := c.Ingester.Writer(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return countingWriter{w, &c.n}, nil
}

func TestWriteBlob(t *testing.T) {
	for _, tc := range []struct {
		name      string
		reader    func([]byte) io.Reader
		rewritten bool // whether the resumed part is written again
	}{
		{"seeker", func(p []byte) io.Reader { return bytes.NewReader(p) }, false},
		{"stream", func(p []byte) io.Reader { return io.MultiReader(bytes.NewReader(p)) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := local.NewStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			p, desc := testBlob(3<<20 + 99)
			const done = 1<<20 + 5

			w, err := s.Writer(ctx, content.WithRef("ref"), content.WithDescriptor(desc))
			if err != nil {
				t.Fatal(err)
			}
			w.Write(p[:done])
			w.Close()

			ci := &countingIngester{Ingester: s}
			if err := content.WriteBlob(ctx, ci, "ref", tc.reader(p), desc); err != nil {
				t.Fatal(err)
			}
			want := desc.Size - done
			if tc.rewritten {
				want = desc.Size
			}
			if ci.n != want {
				t.Fatalf("resumed WriteBlob wrote %d bytes, want %d", ci.n, want)
			}
			got, err := content.ReadBlob(ctx, s, desc)
			if err != nil || !bytes.Equal(got, p) {
				t.Fatalf("ReadBlob: %d bytes, %v", len(got), err)
			}

			// Writing it again is not an error, and writes nothing.
			ci.n = 0
			if err := content.WriteBlob(ctx, ci, "again", tc.reader(p), desc); err != nil || ci.n != 0 {
				t.Fatalf("WriteBlob of existing content: %v, wrote %d", err, ci.n)
			}
		})
	}
}

func TestWriteBlobMismatch(t *testing.T) {
	s, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, desc := testBlob(1000)
	desc.Digest = digest.FromString("something else")
	err = content.WriteBlob(ctx, s, "ref", bytes.NewReader(p), desc)
	if !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("WriteBlob with a wrong digest: %v, want FailedPrecondition", err)
	}
}

func TestNewReader(t *testing.T) {
	s, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, desc := testBlob(100 << 10)
	if err := content.WriteBlob(ctx, s, "ref", bytes.NewReader(p), desc); err != nil {
		t.Fatal(err)
	}
	ra, err := s.ReaderAt(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	got, err := io.ReadAll(content.NewReader(ra))
	if err != nil || !bytes.Equal(got, p) {
		t.Fatalf("NewReader: %d bytes, %v", len(got), err)
	}
	if _, err := content.ReadBlob(ctx, s, ocispec.Descriptor{Digest: digest.FromString("x")}); !errdefs.IsNotFound(err) {
		t.Fatalf("ReadBlob of missing content: %v", err)
	}
}

func TestAdaptInfo(t *testing.T) {
	a := content.AdaptInfo(content.Info{Digest: "sha256:ab", Size: 12, Labels: map[string]string{"a.b": "c"}})
	for _, tc := range []struct {
		path  []string
		value string
		ok    bool
	}{
		{[]string{"digest"}, "sha256:ab", true},
		{[]string{"size"}, "12", true},
		{[]string{"labels", "a", "b"}, "c", true},
		{[]string{"labels", "x"}, "", false},
		{[]string{"other"}, "", false},
		{nil, "", false},
	} {
		if v, ok := a.Field(tc.path); v != tc.value || ok != tc.ok {
			t.Errorf("Field(%q) = %q, %v; want %q, %v", tc.path, v, ok, tc.value, tc.ok)
		}
	}
}
