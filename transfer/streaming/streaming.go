// Package streaming carries bytes over a streaming.Stream with the flow
// control containerd's clients speak: the receiver grants window with
// WindowUpdate messages and the sender sends no more Data bytes than it
// was granted, so a reader that stops reading stops the writer instead of
// making the daemon buffer without bound. The end of the stream is the
// end of the bytes.
package streaming

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	transfertypes "github.com/llitfkitfk/containerd/api/types/transfer"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/streaming"
	"google.golang.org/protobuf/encoding/protowire"
)

const (
	// maxData is the most bytes one Data message we send carries (what
	// containerd's senders send too).
	maxData = 32 << 10
	// windowSize is what a receiver grants at a time, and the most it
	// lets the sender have outstanding before granting more. containerd
	// grants 64 KiB, which bounds a stream to 64 KiB per round trip:
	// an archive import crawls at that pace on a busy machine. 1 MiB
	// keeps the sender busy while the receiver writes, at a cost of at
	// most 2 MiB buffered per stream.
	windowSize = 1 << 20
)

// ErrWindowExceeded is returned by a Reader whose peer sent more than it
// was granted.
var ErrWindowExceeded = errors.New("peer sent more data than the window granted")

// NewReader returns the bytes the peer sends on s. Reading grants the
// peer more window; closing the reader, or ending ctx, closes s.
//
// Messages are received and decoded by a goroutine of the reader's own,
// ahead of Read, so that a consumer that writes what it reads to disk
// (an archive import) does so while the next bytes arrive. The window
// bounds how far ahead: the peer may not send more than was granted, and
// more is granted only as Read consumes.
func NewReader(ctx context.Context, s streaming.Stream) io.ReadCloser {
	r := &reader{ctx: ctx, s: s, data: make(chan []byte, 64), quit: make(chan struct{}), ended: make(chan struct{})}
	r.stop = context.AfterFunc(ctx, func() { r.Close() })
	return r
}

type reader struct {
	ctx    context.Context
	s      streaming.Stream
	stop   func() bool
	closed atomic.Bool

	// granted is all the window ever granted; the receiving goroutine
	// checks the bytes it received against it.
	granted atomic.Int64
	data    chan []byte   // received Data, in order
	quit    chan struct{} // closed by Close: the receiver stops
	ended   chan struct{} // closed by the receiver once endErr is set
	endErr  error         // why receiving ended: io.EOF at the end

	// Read state; Read is not safe for concurrent use, as io.Reader.
	started  bool
	pending  []byte
	consumed int64 // bytes Read has taken from received messages
	err      error

	closeOnce sync.Once
	closeErr  error
}

func (r *reader) Read(p []byte) (int, error) {
	if r.closed.Load() {
		return 0, r.closedErr()
	}
	if !r.started {
		r.started = true
		go r.receive()
	}
	for len(r.pending) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.next()
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}

// next grants window if the peer is running short, then takes the next
// received Data into pending. It returns io.EOF when the peer ends.
func (r *reader) next() error {
	if r.granted.Load()-r.consumed < windowSize {
		a, err := streaming.MarshalAny(&transfertypes.WindowUpdate{Update: windowSize})
		if err != nil {
			return err
		}
		// Counted before it is sent, so the receiver never sees data
		// it does not know was granted. A failed grant is reported only
		// if receiving fails too: a peer that finished sending may
		// already have stopped listening.
		r.granted.Add(windowSize)
		if err := r.s.Send(a); err != nil {
			r.granted.Add(-windowSize)
		}
	}
	select {
	case d := <-r.data:
		r.consumed += int64(len(d))
		r.pending = d
		return nil
	case <-r.ended:
		// Take what was received before the end.
		select {
		case d := <-r.data:
			r.consumed += int64(len(d))
			r.pending = d
			return nil
		default:
		}
		if r.closed.Load() {
			// The end of a stream we closed is not the end of the bytes.
			return r.closedErr()
		}
		return r.endErr
	}
}

// receive receives the peer's messages until the stream ends or the
// reader is closed, handing Data to Read in order.
func (r *reader) receive() {
	var received int64
	err := func() error {
		for {
			a, err := r.s.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					return io.EOF
				}
				return fmt.Errorf("receive byte stream: %w", err)
			}
			var data transfertypes.Data
			if !a.MessageIs(&data) {
				// Room for message kinds a newer peer may send.
				log.L.WithField("type", a.GetTypeUrl()).Debug("byte stream: ignoring message")
				continue
			}
			p, err := dataBytes(a.GetValue())
			if err != nil {
				return fmt.Errorf("byte stream: bad Data message: %w", err)
			}
			if len(p) == 0 {
				continue
			}
			received += int64(len(p))
			if granted := r.granted.Load(); received > granted {
				return fmt.Errorf("byte stream: %d bytes received with %d granted: %w", received, granted, ErrWindowExceeded)
			}
			select {
			case r.data <- p:
			case <-r.quit:
				return streaming.ErrClosed
			}
		}
	}()
	r.endErr = err
	close(r.ended)
}

// dataBytes returns the data field of an encoded
// containerd.types.transfer.Data as a slice of b itself: a stream's bytes
// arrive in b once, and unmarshalling would copy them all again.
func dataBytes(b []byte) ([]byte, error) {
	var data []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			data = v // the last occurrence wins, as in proto.Unmarshal
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return data, nil
}

func (r *reader) closedErr() error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("byte stream: read after close: %w", streaming.ErrClosed)
}

// Close closes the stream, which tells the peer to stop sending.
func (r *reader) Close() error {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		close(r.quit)
		r.stop()
		r.closeErr = r.s.Close()
	})
	return r.closeErr
}

// NewWriter returns a writer sending its bytes to the peer on s as the
// peer grants window. Write blocks while the window is used up; it fails
// once the peer stops granting (its end closed), ctx ends, or the writer
// is closed. Close closes s, which ends the bytes for the peer.
func NewWriter(ctx context.Context, s streaming.Stream) io.WriteCloser {
	w := &writer{ctx: ctx, s: s, granted: make(chan struct{}, 1), peerDone: make(chan struct{}), closed: make(chan struct{})}
	go w.receiveGrants()
	return w
}

type writer struct {
	ctx context.Context
	s   streaming.Stream

	mu       sync.Mutex
	window   int64         // granted and not yet sent
	peerErr  error         // why the peer stopped granting
	granted  chan struct{} // a grant arrived
	peerDone chan struct{} // no more grants will arrive
	closed   chan struct{}

	writeMu   sync.Mutex
	closeOnce sync.Once
	closeErr  error
}

func (w *writer) receiveGrants() {
	defer close(w.peerDone)
	for {
		a, err := w.s.Recv()
		if err != nil {
			w.mu.Lock()
			w.peerErr = err
			w.mu.Unlock()
			return
		}
		var update transfertypes.WindowUpdate
		if !a.MessageIs(&update) {
			log.L.WithField("type", a.GetTypeUrl()).Debug("byte stream: ignoring message")
			continue
		}
		if err := a.UnmarshalTo(&update); err != nil || update.Update <= 0 {
			// A grant that is not one is ignored rather than trusted.
			log.L.WithField("update", update.Update).Debug("byte stream: ignoring bad window update")
			continue
		}
		w.mu.Lock()
		// Bounded so that a hostile peer cannot overflow the count.
		w.window = min(w.window+int64(update.Update), 1<<40)
		w.mu.Unlock()
		select {
		case w.granted <- struct{}{}:
		default:
		}
	}
}

// take waits for window and returns how much of want may be sent now.
func (w *writer) take(want int) (int, error) {
	for {
		w.mu.Lock()
		n := int(min(w.window, int64(want)))
		w.window -= int64(n)
		w.mu.Unlock()
		if n > 0 {
			return n, nil
		}
		select {
		case <-w.granted:
		case <-w.peerDone:
			// Take what the last grants allowed before giving up.
			w.mu.Lock()
			left, peerErr := w.window, w.peerErr
			w.mu.Unlock()
			if left > 0 {
				continue
			}
			if peerErr == nil || errors.Is(peerErr, io.EOF) {
				peerErr = errors.New("peer stopped reading")
			}
			return 0, fmt.Errorf("byte stream: %w", peerErr)
		case <-w.ctx.Done():
			return 0, w.ctx.Err()
		case <-w.closed:
			return 0, fmt.Errorf("byte stream: write after close: %w", streaming.ErrClosed)
		}
	}
}

func (w *writer) Write(p []byte) (int, error) {
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	written := 0
	for len(p) > 0 {
		n, err := w.take(min(len(p), maxData))
		if err != nil {
			return written, err
		}
		a, err := streaming.MarshalAny(&transfertypes.Data{Data: p[:n]})
		if err != nil {
			return written, err
		}
		if err := w.s.Send(a); err != nil {
			return written, fmt.Errorf("byte stream: send: %w", err)
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// Close ends the bytes: the stream is closed, and a Write blocked waiting
// for window fails.
func (w *writer) Close() error {
	w.closeOnce.Do(func() {
		close(w.closed)
		w.closeErr = w.s.Close()
	})
	return w.closeErr
}

// SendStream copies r to the peer on s in the background, closing s when
// r ends or the copy fails (the peer then sees the bytes end early). It is
// the client's side of an import.
func SendStream(ctx context.Context, r io.Reader, s streaming.Stream) {
	w := NewWriter(ctx, s)
	go func() {
		defer w.Close()
		if _, err := io.Copy(w, r); err != nil {
			log.G(ctx).WithError(err).Warn("byte stream: send ended early")
		}
	}()
}

// GenerateID returns a stream id unlikely to be taken: prefix, the time
// and random bytes.
func GenerateID(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", prefix, time.Now().UnixNano(), base64.RawURLEncoding.EncodeToString(b[:]))
}
