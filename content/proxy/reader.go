package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	digest "github.com/opencontainers/go-digest"

	contentapi "github.com/llitfkitfk/containerd/api/services/content/v1"
	"github.com/llitfkitfk/containerd/errdefs"
)

// readAhead is the least a Read stream asks for. Callers often read in
// small pieces (a tar reader, io.Copy's 32 KiB); asking the daemon for
// each piece would cost a stream per piece. Instead a read opens a
// stream for at least readAhead bytes, and the next reads that continue
// where it stands take their bytes from it. A stream is also what the
// daemon holds buffers for, so it is bounded rather than running to the
// end of a large blob.
const readAhead = 8 << 20

// readerAt reads a blob with Read streams. Sequential reads share one
// stream (see readAhead); a read elsewhere, or one made while another is
// in progress, gets a stream of its own, so concurrent ReadAt calls are
// safe as io.ReaderAt requires.
type readerAt struct {
	ctx    context.Context
	client contentapi.ContentClient
	digest digest.Digest
	size   int64

	mu sync.Mutex
	// cur is the stream sequential reads continue, nil if none.
	cur *readStream
}

// readStream is an open Read stream: pos is the blob offset of the first
// byte of pending, the part of the last message not read yet, and end
// the offset the stream stops at.
type readStream struct {
	stream  contentapi.Content_ReadClient
	cancel  context.CancelFunc
	pos     int64
	end     int64
	pending []byte
}

func (ra *readerAt) Size() int64 { return ra.size }

func (ra *readerAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s at negative offset %d: %w", ra.digest, off, errdefs.ErrInvalidArgument)
	}
	if off >= ra.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), ra.size-off)
	if !ra.mu.TryLock() {
		// Another read holds the shared stream: read on a stream of
		// this read's own, for just its bytes.
		s, err := ra.open(off, want)
		if err != nil {
			return 0, err
		}
		defer s.close()
		n, err := s.read(ra.digest, p[:want])
		if err != nil {
			return n, err
		}
		return eof(n, len(p))
	}
	defer ra.mu.Unlock()
	s := ra.cur
	if s != nil && s.pos != off {
		s.close()
		s, ra.cur = nil, nil
	}
	n := 0
	for int64(n) < want {
		if s == nil {
			var err error
			if s, err = ra.open(off+int64(n), max(want-int64(n), readAhead)); err != nil {
				return n, err
			}
			ra.cur = s
		}
		// The stream may end before this read does; the rest comes
		// from the next one.
		m, err := s.read(ra.digest, p[n:int64(n)+min(want-int64(n), s.end-s.pos)])
		n += m
		if s.pos >= s.end {
			s.close()
			s, ra.cur = nil, nil
		}
		if err != nil {
			if s != nil {
				s.close()
				ra.cur = nil
			}
			return n, err
		}
	}
	return eof(n, len(p))
}

// eof is ReadAt's result once n bytes were read into a buffer of size
// asked: a read that reached the end of the blob short of filling the
// buffer says io.EOF, as io.ReaderAt requires.
func eof(n, asked int) (int, error) {
	if n < asked {
		return n, io.EOF
	}
	return n, nil
}

// open opens a stream of size bytes from off, clipped to the blob.
func (ra *readerAt) open(off, size int64) (*readStream, error) {
	size = min(size, ra.size-off)
	ctx, cancel := context.WithCancel(ra.ctx)
	stream, err := ra.client.Read(ctx, &contentapi.ReadContentRequest{
		Digest: ra.digest.String(),
		Offset: off,
		Size:   size,
	})
	if err != nil {
		cancel()
		return nil, errdefs.FromGRPC(err)
	}
	return &readStream{stream: stream, cancel: cancel, pos: off, end: off + size}, nil
}

// read fills p from the stream, which must have len(p) bytes left.
func (s *readStream) read(dgst digest.Digest, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(s.pending) == 0 {
			resp, err := s.stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					// The blob is shorter than its size said: it changed
					// under us, which a content store does not allow.
					err = fmt.Errorf("read %s: stream ended at %d of %d: %w", dgst, s.pos, s.end, io.ErrUnexpectedEOF)
				}
				return n, errdefs.FromGRPC(err)
			}
			s.pending = resp.Data
		}
		c := copy(p[n:], s.pending)
		s.pending = s.pending[c:]
		s.pos += int64(c)
		n += c
	}
	return n, nil
}

// close ends the stream; the daemon stops sending.
func (s *readStream) close() { s.cancel() }

// Close ends the stream reads were continuing, if any.
func (ra *readerAt) Close() error {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if ra.cur != nil {
		ra.cur.close()
		ra.cur = nil
	}
	return nil
}
