package content

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
)

// fakeIngester holds one ingest in memory, as the daemon would: what was
// written survives a writer's Close, and Commit checks size and digest.
type fakeIngester struct {
	data      []byte
	locked    int // Writer calls to refuse as "ref locked" first
	committed digest.Digest
	exists    bool
}

func (f *fakeIngester) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	if f.exists {
		return nil, fmt.Errorf("blob: %w", errdefs.ErrAlreadyExists)
	}
	if f.locked > 0 {
		f.locked--
		return nil, fmt.Errorf("ref locked: %w", errdefs.ErrUnavailable)
	}
	return &fakeWriter{f: f}, nil
}

type fakeWriter struct{ f *fakeIngester }

func (w *fakeWriter) Write(p []byte) (int, error) {
	w.f.data = append(w.f.data, p...)
	return len(p), nil
}
func (w *fakeWriter) Close() error          { return nil }
func (w *fakeWriter) Digest() digest.Digest { return digest.FromBytes(w.f.data) }
func (w *fakeWriter) Status() (content.Status, error) {
	return content.Status{Ref: "ref", Offset: int64(len(w.f.data))}, nil
}
func (w *fakeWriter) Truncate(size int64) error { w.f.data = w.f.data[:size]; return nil }
func (w *fakeWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	if size > 0 && size != int64(len(w.f.data)) {
		return fmt.Errorf("unexpected commit size %d, expected %d: %w", len(w.f.data), size, errdefs.ErrFailedPrecondition)
	}
	if got := w.Digest(); expected != "" && got != expected {
		return fmt.Errorf("unexpected commit digest %s, expected %s: %w", got, expected, errdefs.ErrFailedPrecondition)
	}
	w.f.committed = w.Digest()
	return nil
}

// pipeOnly hides a reader's Seek and ReadAt, as a pipe on stdin has none.
type pipeOnly struct{ io.Reader }

func TestIngest(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 300000) // 3 MB: several chunks
	desc := ocispec.Descriptor{Size: int64(len(data)), Digest: digest.FromBytes(data)}
	ctx := context.Background()

	for _, c := range []struct {
		name    string
		have    int // bytes the daemon has of the ingest already
		r       func() io.Reader
		desc    ocispec.Descriptor
		wantErr string
	}{
		{name: "whole", r: func() io.Reader { return bytes.NewReader(data) }, desc: desc},
		{name: "no size or digest", r: func() io.Reader { return pipeOnly{bytes.NewReader(data)} }},
		{name: "resume by seeking", have: 1<<20 + 3, r: func() io.Reader { return bytes.NewReader(data) }, desc: desc},
		{name: "resume by reading past", have: 12345, r: func() io.Reader { return pipeOnly{bytes.NewReader(data)} }, desc: desc},
		{name: "short", r: func() io.Reader { return bytes.NewReader(data[:len(data)-1]) }, desc: desc,
			wantErr: "failed to read expected number of bytes"},
		{name: "long", r: func() io.Reader { return bytes.NewReader(append(data[:len(data):len(data)], 'x')) }, desc: desc,
			wantErr: "read exceeds expected size"},
		{name: "wrong digest", r: func() io.Reader { return bytes.NewReader(data) },
			desc: ocispec.Descriptor{Size: desc.Size, Digest: digest.FromString("x")}, wantErr: "unexpected commit digest"},
		{name: "ingest longer than expected", have: len(data) + 1, r: func() io.Reader { return bytes.NewReader(data) }, desc: desc,
			wantErr: "more than the expected size"},
		{name: "input shorter than the resumed offset", have: 100, r: func() io.Reader { return pipeOnly{bytes.NewReader(data[:50])} }, desc: desc,
			wantErr: "input ended after 50 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeIngester{}
			if c.have > 0 {
				f.data = append([]byte(nil), data...)
				if c.have > len(data) {
					f.data = append(f.data, make([]byte, c.have-len(data))...)
				}
				f.data = f.data[:c.have]
			}
			err := ingest(ctx, f, "ref", c.r(), c.desc)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, c.wantErr)
				}
				if f.committed != "" {
					t.Fatal("a failed ingest was committed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.committed != desc.Digest || !bytes.Equal(f.data, data) {
				t.Fatalf("committed %s of %d bytes, want %s", f.committed, len(f.data), desc.Digest)
			}
		})
	}
}

func TestIngestWaitsForLockedRef(t *testing.T) {
	data := []byte("data")
	f := &fakeIngester{locked: 3}
	if err := ingest(context.Background(), f, "ref", bytes.NewReader(data), ocispec.Descriptor{}); err != nil {
		t.Fatal(err)
	}
	if f.committed != digest.FromBytes(data) {
		t.Fatal("not committed")
	}

	// A ref that stays locked fails once the command's time is up, saying so.
	f = &fakeIngester{locked: 1 << 30}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := ingest(ctx, f, "ref", bytes.NewReader(data), ocispec.Descriptor{})
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "ref locked") {
		t.Fatalf("err = %v, want the lock's", err)
	}
}

func TestIngestOfExistingBlobSucceeds(t *testing.T) {
	f := &fakeIngester{exists: true}
	if err := ingest(context.Background(), f, "ref", strings.NewReader("x"), ocispec.Descriptor{}); err != nil {
		t.Fatal(err)
	}
}

func TestCopyChunksFillsWrites(t *testing.T) {
	var sizes []int
	w := writerFunc(func(p []byte) (int, error) { sizes = append(sizes, len(p)); return len(p), nil })
	// A reader handing out 1000 bytes a read, as a pipe does.
	r := io.LimitReader(&slowReader{}, 2*ingestChunk+5)
	n, err := copyChunks(w, r)
	if err != nil || n != 2*ingestChunk+5 {
		t.Fatalf("copied %d, %v", n, err)
	}
	if fmt.Sprint(sizes) != fmt.Sprint([]int{ingestChunk, ingestChunk, 5}) {
		t.Fatalf("write sizes %v", sizes)
	}
	if _, err := copyChunks(w, errReader{}); !errors.Is(err, errBroken) {
		t.Fatalf("read error lost: %v", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

type slowReader struct{}

func (slowReader) Read(p []byte) (int, error) { return len(p[:min(len(p), 1000)]), nil }

var errBroken = errors.New("broken")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBroken }
