package remotes

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
)

// recTee records what a Fetch tees and how it is closed.
type recTee struct {
	buf    bytes.Buffer
	closed bool
	err    error
	fail   bool // fail every write
}

func (r *recTee) Write(p []byte) (int, error) {
	if r.fail {
		return 0, errors.New("reader gone")
	}
	return r.buf.Write(p)
}

func (r *recTee) CloseWithError(err error) error {
	r.closed, r.err = true, err
	return nil
}

func teeCtx(tee *recTee, opened *int) context.Context {
	return WithTee(context.Background(), func(ocispec.Descriptor) Tee {
		*opened++
		return tee
	})
}

func TestFetchTee(t *testing.T) {
	data := bytes.Repeat([]byte("layer"), 300000) // more than one copy buffer
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(data), Size: int64(len(data))}

	t.Run("whole", func(t *testing.T) {
		var tee recTee
		var opened int
		if err := Fetch(teeCtx(&tee, &opened), newStore(t), byteFetcher{desc.Digest: data}, desc); err != nil {
			t.Fatal(err)
		}
		if opened != 1 || !bytes.Equal(tee.buf.Bytes(), data) || !tee.closed || tee.err != nil {
			t.Fatalf("opened %d, %d bytes teed, closed %v with %v; want 1, %d, true, nil", opened, tee.buf.Len(), tee.closed, tee.err, len(data))
		}
	})

	t.Run("bad digest", func(t *testing.T) {
		var tee recTee
		var opened int
		forged := bytes.Clone(data)
		forged[0] = 'L'
		store := newStore(t)
		err := Fetch(teeCtx(&tee, &opened), store, byteFetcher{desc.Digest: forged}, desc)
		if !errdefs.IsFailedPrecondition(err) {
			t.Fatalf("Fetch: %v, want FailedPrecondition", err)
		}
		if !tee.closed || !errors.Is(tee.err, errdefs.ErrFailedPrecondition) {
			t.Fatalf("tee closed %v with %v; want the digest error", tee.closed, tee.err)
		}
	})

	t.Run("short", func(t *testing.T) {
		var tee recTee
		var opened int
		err := Fetch(teeCtx(&tee, &opened), newStore(t), byteFetcher{desc.Digest: data[:1000]}, desc)
		if !errors.Is(err, io.ErrUnexpectedEOF) || !tee.closed || !errors.Is(tee.err, io.ErrUnexpectedEOF) {
			t.Fatalf("Fetch %v, tee closed %v with %v; want unexpected EOF for both", err, tee.closed, tee.err)
		}
	})

	t.Run("reader gone", func(t *testing.T) {
		tee := recTee{fail: true}
		var opened int
		store := newStore(t)
		if err := Fetch(teeCtx(&tee, &opened), store, byteFetcher{desc.Digest: data}, desc); err != nil {
			t.Fatalf("a tee that fails must not fail the fetch: %v", err)
		}
		if got, _ := content.ReadBlob(context.Background(), store, desc); !bytes.Equal(got, data) {
			t.Fatal("blob differs")
		}
	})

	t.Run("resumed", func(t *testing.T) {
		ctx := context.Background()
		store := newStore(t)
		w, err := store.Writer(ctx, content.WithRef(MakeRefKey(ctx, desc)), content.WithDescriptor(desc))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data[:1500])
		w.Close()
		var tee recTee
		var opened int
		if err := Fetch(teeCtx(&tee, &opened), store, seekFetcher(data), desc); err != nil {
			t.Fatal(err)
		}
		if opened != 0 {
			t.Fatalf("a resumed fetch opened its tee %d times; it has not the first bytes to give", opened)
		}
	})
}

// seekFetcher serves one blob as a seekable body, so that a fetch can
// resume.
type seekFetcher []byte

func (f seekFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	return struct {
		io.ReadSeeker
		io.Closer
	}{bytes.NewReader(f), io.NopCloser(nil)}, nil
}

// TestFetchDownloaded checks that WithDownloaded's hook runs once the
// bytes are read, before the blob is committed.
func TestFetchDownloaded(t *testing.T) {
	data := []byte("downloaded")
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(data), Size: int64(len(data))}
	store := newStore(t)
	calls := 0
	ctx := WithDownloaded(context.Background(), func() {
		calls++
		if _, err := store.Info(context.Background(), desc.Digest); !errdefs.IsNotFound(err) {
			t.Errorf("hook ran after the commit: Info %v", err)
		}
	})
	if err := Fetch(ctx, store, byteFetcher{desc.Digest: data}, desc); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("hook called %d times, want 1", calls)
	}
	if _, err := store.Info(context.Background(), desc.Digest); err != nil {
		t.Fatal(err)
	}
}
