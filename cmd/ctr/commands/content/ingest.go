package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
)

// ingestChunk is the size of each write, the daemon's message size.
const ingestChunk = 1 << 20

// ingest writes r into the ingest named ref and commits it as desc (its
// size and digest are checked when set). A blob already there is
// success. An ingest of ref cut off earlier is resumed at the daemon's
// offset, r moved or read past to it; a ref another writer holds is
// waited for, as that writer may be one that was just cut off and the
// daemon has yet to notice.
//
// A failed ingest is left in place rather than aborted, so that it can be
// resumed or inspected with `content active`, as with containerd's ctr.
func ingest(ctx context.Context, ingester content.Ingester, ref string, r io.Reader, desc ocispec.Descriptor) error {
	w, err := openWriter(ctx, ingester, ref, desc)
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			return nil
		}
		return fmt.Errorf("failed to open writer for %s: %w", ref, err)
	}
	defer w.Close()

	st, err := w.Status()
	if err != nil {
		return fmt.Errorf("failed to get status of %s: %w", ref, err)
	}
	offset := st.Offset
	if desc.Size > 0 && offset > desc.Size {
		return fmt.Errorf("ingest %s holds %d bytes, more than the expected size %d: %w", ref, offset, desc.Size, errdefs.ErrFailedPrecondition)
	}
	if offset > 0 {
		if err := skip(r, offset); err != nil {
			return fmt.Errorf("unable to resume write to %s at %d: %w", ref, offset, err)
		}
	}
	if desc.Size > 0 {
		// One byte more than expected is enough to tell a long input.
		r = io.LimitReader(r, desc.Size-offset+1)
	}
	copied, err := copyChunks(w, r)
	if err != nil {
		return fmt.Errorf("failed to copy to %s: %w", ref, err)
	}
	if desc.Size > 0 {
		if want := desc.Size - offset; copied < want {
			// containerd's wording, which scripts and our tests look for.
			return fmt.Errorf("failed to read expected number of bytes: %d of %d: %w", copied, want, io.ErrUnexpectedEOF)
		} else if copied > want {
			return fmt.Errorf("read exceeds expected size %d: %w", desc.Size, errdefs.ErrFailedPrecondition)
		}
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("failed commit on ref %q: %w", ref, err)
	}
	return nil
}

// openWriter opens the ingest, retrying while its ref is locked
// (Unavailable) with a backoff up to 1s, until ctx ends.
func openWriter(ctx context.Context, ingester content.Ingester, ref string, desc ocispec.Descriptor) (content.Writer, error) {
	wait := 10 * time.Millisecond
	for {
		w, err := ingester.Writer(ctx, content.WithRef(ref), content.WithDescriptor(desc))
		if err == nil || !errdefs.IsUnavailable(err) {
			return w, err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, err
		}
		if wait < time.Second {
			wait *= 2
		}
	}
}

// skip moves r past its first n bytes: by seeking when r is a seekable
// file, else by reading and dropping them (a pipe carrying the whole blob
// again).
func skip(r io.Reader, n int64) error {
	if s, ok := r.(io.Seeker); ok {
		if pos, err := s.Seek(n, io.SeekStart); err == nil {
			if pos != n {
				return fmt.Errorf("seek to %d ended at %d", n, pos)
			}
			return nil
		}
		// Not seekable after all (os.Stdin on a pipe): read past.
	}
	skipped, err := io.CopyN(io.Discard, r, n)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("input ended after %d bytes: %w", skipped, io.ErrUnexpectedEOF)
	}
	return err
}

// copyChunks copies r to w in writes of ingestChunk bytes, filling each
// before it is written (a pipe hands over a few kB per read), so each
// write is one full message to the daemon.
func copyChunks(w io.Writer, r io.Reader) (int64, error) {
	buf := make([]byte, ingestChunk)
	var written int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			m, err := w.Write(buf[:n])
			written += int64(m)
			if err != nil {
				return written, err
			}
			if m != n {
				return written, io.ErrShortWrite
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}
