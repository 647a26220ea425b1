package local

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
)

// WriteVector appends its pieces in order, whatever their number and
// sizes: empty ones, more than one writev takes (1024), a total under and
// over parallelMin.
func TestWriteVector(t *testing.T) {
	for _, tc := range []struct{ pieces, size int }{
		{1, 10}, {5, 1000}, {64, 16 << 10}, {1500, 700}, {3000, 3},
	} {
		t.Run(fmt.Sprintf("%dx%d", tc.pieces, tc.size), func(t *testing.T) {
			data, desc := blob(tc.pieces*tc.size, uint64(tc.pieces))
			s, _ := newStore(t)
			w := openWriter(t, s, "r", ocispec.Descriptor{})
			var pieces [][]byte
			for i := 0; i < tc.pieces; i++ {
				pieces = append(pieces, data[i*tc.size:(i+1)*tc.size])
				if i%7 == 3 {
					pieces = append(pieces, nil)
				}
			}
			// Twice: the second call appends to the first.
			half := len(pieces) / 2
			n1, err := content.WriteVector(w, pieces[:half], time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			n2, err := content.WriteVector(w, pieces[half:], time.Time{})
			if err != nil || n1+n2 != int64(len(data)) {
				t.Fatalf("wrote %d+%d of %d: %v", n1, n2, len(data), err)
			}
			if st, _ := w.Status(); st.Offset != int64(len(data)) {
				t.Fatalf("offset %d, want %d", st.Offset, len(data))
			}
			if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
				t.Fatal(err)
			}
			if got, err := content.ReadBlob(ctx, s, desc); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back: %v", err)
			}
		})
	}
}

// A large write syncs in the background as it goes; if such a sync
// fails, the commit fails (the kernel reports the failure to that sync
// only), and the ingest is emptied, since what it holds may not be on
// disk: a writer resuming it starts at 0 and can commit.
func TestBackgroundSyncFailure(t *testing.T) {
	var calls atomic.Int32
	var fail atomic.Bool
	old := fdatasync
	fdatasync = func(fd int) error {
		calls.Add(1)
		if fail.Load() {
			return syscall.EIO
		}
		return old(fd)
	}
	defer func() { fdatasync = old }()

	data, desc := blob(3*syncChunk+5, 7)
	s, _ := newStore(t)
	w := openWriter(t, s, "r", ocispec.Descriptor{})
	fail.Store(true)
	for off := 0; off < len(data); off += 1 << 20 {
		write(t, w, data[off:min(off+1<<20, len(data))])
	}
	err := w.Commit(ctx, desc.Size, desc.Digest)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("commit after a failed background sync: %v", err)
	}
	if calls.Load() < 1 {
		t.Fatal("no background sync ran")
	}
	if st, err := s.Status(ctx, "r"); err != nil || st.Offset != 0 {
		t.Fatalf("ingest after the failed sync: %+v, %v", st, err)
	}

	fail.Store(false)
	calls.Store(0)
	w = openWriter(t, s, "r", ocispec.Descriptor{})
	for off := 0; off < len(data); off += 1 << 20 {
		write(t, w, data[off:min(off+1<<20, len(data))])
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
	// A sync every syncChunk, unless the last was still running, and
	// the commit's.
	if n := calls.Load(); n < 2 || n > 4 {
		t.Fatalf("%d syncs for %d bytes", n, len(data))
	}
}
