package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"

	digest "github.com/opencontainers/go-digest"

	"github.com/llitfkitfk/containerd/api/convert"
	contentapi "github.com/llitfkitfk/containerd/api/services/content/v1"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
)

// Chunk sizes of a Write stream. Every WRITE waits for its answer, so the
// fewer the messages the faster the stream: data comes in pieces of up to
// maxChunk, well under the 16 MiB message limit of containerd's daemons.
// Writes smaller than directChunk are gathered into one buffer of
// bufferChunk first, so that a caller writing a few KiB at a time does
// not pay a round trip each.
const (
	maxChunk    = 4 << 20
	bufferChunk = 1 << 20
	directChunk = 256 << 10
)

// writer is one Write stream. Like a file, it is not safe for concurrent
// use. Its data reaches the daemon in order; what a failed call leaves is
// reported by every later call, since the stream is then gone.
type writer struct {
	ref    string
	stream contentapi.Content_WriteClient
	cancel context.CancelFunc

	// offset is where the next byte goes in the ingest: what the daemon
	// has acknowledged. buf holds the bytes written after it and not sent.
	offset int64
	buf    []byte
	total  int64
	digest digest.Digest

	err    error // the failure that ended the stream
	closed bool
}

// openWriter opens a Write stream on ref and asks where the ingest stands.
func openWriter(ctx context.Context, client contentapi.ContentClient, ref string, total int64, expected digest.Digest) (*writer, error) {
	// The stream lives until Close, which cancels it once the daemon has
	// let go of the ref, or at once if it does not answer.
	ctx, cancel := context.WithCancel(ctx)
	stream, err := client.Write(ctx)
	if err != nil {
		cancel()
		return nil, errdefs.FromGRPC(err)
	}
	w := &writer{ref: ref, stream: stream, cancel: cancel}
	resp, err := w.send(&contentapi.WriteContentRequest{
		Action:   contentapi.WriteAction_STAT,
		Ref:      ref,
		Total:    total,
		Expected: expected.String(),
	})
	if err != nil {
		cancel()
		return nil, err
	}
	w.offset, w.total = resp.Offset, resp.Total
	return w, nil
}

// usable says why the writer cannot be used any more, if it cannot.
func (w *writer) usable() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return fmt.Errorf("content writer %q is closed: %w", w.ref, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// send makes one request and returns its answer; a failure ends the
// stream, and becomes the writer's error.
func (w *writer) send(req *contentapi.WriteContentRequest) (*contentapi.WriteContentResponse, error) {
	if err := w.usable(); err != nil {
		return nil, err
	}
	err := w.stream.Send(req)
	var resp *contentapi.WriteContentResponse
	if err == nil {
		resp, err = w.stream.Recv()
	} else if errors.Is(err, io.EOF) {
		// The daemon ended the stream; its reason comes with Recv.
		_, err = w.stream.Recv()
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("daemon ended the write of %q: %w", w.ref, io.ErrUnexpectedEOF)
		}
		w.err = errdefs.FromGRPC(err)
		w.cancel()
		return nil, w.err
	}
	if resp.Digest != "" {
		w.digest = digest.Digest(resp.Digest)
	}
	return resp, nil
}

// writeChunk sends p, at most maxChunk, at the writer's offset.
func (w *writer) writeChunk(p []byte) error {
	resp, err := w.send(&contentapi.WriteContentRequest{
		Action: contentapi.WriteAction_WRITE,
		Offset: w.offset,
		Data:   p,
	})
	if err != nil {
		return err
	}
	if want := w.offset + int64(len(p)); resp.Offset != want {
		w.err = fmt.Errorf("write of %q: daemon is at offset %d, expected %d: %w", w.ref, resp.Offset, want, errdefs.ErrFailedPrecondition)
		w.cancel()
		return w.err
	}
	w.offset = resp.Offset
	return nil
}

// flush sends the buffered bytes.
func (w *writer) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if err := w.writeChunk(w.buf); err != nil {
		return err
	}
	// The daemon has the bytes: the buffer is free again.
	w.buf = w.buf[:0]
	return nil
}

// Write sends p; small writes are gathered and sent when a buffer fills,
// or by the next call that needs the daemon to have them.
func (w *writer) Write(p []byte) (int, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	n := 0
	if len(w.buf) > 0 || len(p) < directChunk {
		if w.buf == nil {
			w.buf = make([]byte, 0, bufferChunk)
		}
		c := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+c]
		n, p = c, p[c:]
		if len(w.buf) < cap(w.buf) {
			return n, nil
		}
		if err := w.flush(); err != nil {
			return n, err
		}
	}
	// Large writes go out as they are, without a copy; the answer to each
	// chunk means the daemon has it, so p is not kept past the return.
	for len(p) >= directChunk {
		c := min(len(p), maxChunk)
		if err := w.writeChunk(p[:c]); err != nil {
			return n, err
		}
		n, p = n+c, p[c:]
	}
	if len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, bufferChunk)
		}
		w.buf = append(w.buf, p...)
		n += len(p)
	}
	return n, nil
}

// ReadFrom copies r into the ingest, reading straight into the send
// buffer; io.Copy uses it.
func (w *writer) ReadFrom(r io.Reader) (int64, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	if w.buf == nil {
		w.buf = make([]byte, 0, bufferChunk)
	}
	var total int64
	for {
		n, err := r.Read(w.buf[len(w.buf):cap(w.buf)])
		w.buf = w.buf[:len(w.buf)+n]
		total += int64(n)
		if len(w.buf) == cap(w.buf) {
			if ferr := w.flush(); ferr != nil {
				return total, ferr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return total, nil
			}
			return total, err
		}
	}
}

// Status reports the ingest, with every byte written so far.
func (w *writer) Status() (content.Status, error) {
	if err := w.flush(); err != nil {
		return content.Status{}, err
	}
	resp, err := w.send(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_STAT})
	if err != nil {
		return content.Status{}, fmt.Errorf("status of write %q: %w", w.ref, err)
	}
	w.offset = resp.Offset
	return content.Status{
		Ref:       w.ref,
		Offset:    resp.Offset,
		Total:     resp.Total,
		StartedAt: convert.TimestampFromProto(resp.StartedAt),
		UpdatedAt: convert.TimestampFromProto(resp.UpdatedAt),
	}, nil
}

// Digest is the digest of what was written so far (of the blob, once
// committed). The daemon computes it; if it cannot be asked, the last
// digest it gave is returned.
func (w *writer) Digest() digest.Digest {
	if w.closed || w.err != nil {
		return w.digest
	}
	if err := w.flush(); err != nil {
		return w.digest
	}
	// A WRITE's answer may not carry the digest (the daemon can still be
	// writing), a STAT's does.
	w.send(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_STAT})
	return w.digest
}

// Commit sends what is buffered with the commit, which the daemon checks
// against size and expected (when given) before storing the blob under
// the options' labels, and ends the stream. A blob already stored fails
// AlreadyExists, which callers usually take as success.
func (w *writer) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	var info content.Info
	for _, opt := range opts {
		if err := opt(&info); err != nil {
			return err
		}
	}
	resp, err := w.send(&contentapi.WriteContentRequest{
		Action:   contentapi.WriteAction_COMMIT,
		Offset:   w.offset,
		Data:     w.buf,
		Total:    size,
		Expected: expected.String(),
		Labels:   info.Labels,
	})
	if err != nil {
		w.Close()
		return fmt.Errorf("commit of %q: %w", w.ref, err)
	}
	w.buf = w.buf[:0]
	w.offset = resp.Offset
	cerr := w.Close()
	// The daemon checks both; a daemon that did not is caught here.
	if size > 0 && resp.Offset != size {
		return fmt.Errorf("commit of %q: size %d, expected %d: %w", w.ref, resp.Offset, size, errdefs.ErrFailedPrecondition)
	}
	if expected != "" && w.digest != expected {
		return fmt.Errorf("commit of %q: digest %s, expected %s: %w", w.ref, w.digest, expected, errdefs.ErrFailedPrecondition)
	}
	return cerr
}

// Truncate can only start the ingest over (size 0), which is all the
// protocol can say; the daemon drops what it has at once.
func (w *writer) Truncate(size int64) error {
	if size == w.offset+int64(len(w.buf)) {
		return nil
	}
	if size != 0 {
		return fmt.Errorf("truncate write %q to %d: only 0 is supported: %w", w.ref, size, errdefs.ErrInvalidArgument)
	}
	w.buf = w.buf[:0]
	resp, err := w.send(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_WRITE, Offset: 0})
	if err != nil {
		return fmt.Errorf("truncate write %q: %w", w.ref, err)
	}
	w.offset = resp.Offset
	return nil
}

// Close sends what is buffered, so that a later writer can resume after
// it, and ends the stream. It returns once the daemon has written what it
// acknowledged and released the ref, so that the ingest can be resumed
// right away.
func (w *writer) Close() error {
	if w.closed {
		return nil
	}
	err := w.flush()
	w.closed = true
	defer w.cancel()
	if w.err != nil {
		if err == nil {
			err = w.err
		}
		return err
	}
	if cerr := w.stream.CloseSend(); cerr != nil && err == nil {
		err = errdefs.FromGRPC(cerr)
	}
	// The daemon ends its side when it is done with the ingest.
	for {
		if _, rerr := w.stream.Recv(); rerr != nil {
			if !errors.Is(rerr, io.EOF) && err == nil {
				err = errdefs.FromGRPC(rerr)
			}
			return err
		}
	}
}
