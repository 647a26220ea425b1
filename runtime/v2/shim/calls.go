package shim

import (
	"context"
	"encoding/binary"
	"net"
	"sync"

	"github.com/containerd/ttrpc"
)

// Once Shutdown returned, the shim must not exit before its answer is
// written: ttrpc gives no sign of that, so the shim watches the ttrpc
// frames going through each connection. Every request read is a call
// whose answer is owed until a response frame goes out on the same
// connection. The task API is unary: one response per request.
//
// Written is not yet taken, though: a ttrpc client that sees its
// connection end may fail a call whose answer it has already read but
// not yet handed over (ttrpc.ErrClosed). So once no answer is owed the
// shim also waits, briefly, for its peers to hang up, as daemons do
// after Shutdown (containerd's at once).

// ttrpc frame: a 10-byte header (payload length, stream id, type, flags)
// and the payload.
const (
	frameHeaderLen      = 10
	frameRequest   byte = 0x1
	frameResponse  byte = 0x2
)

// callTracker counts the answers owed by the shim's connections, and
// the connections open.
type callTracker struct {
	mu      sync.Mutex
	owed    int
	open    int
	changed chan struct{} // closed, and replaced, on every change
}

func (t *callTracker) add(c *trackedConn, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.closed {
		return
	}
	c.owed += n
	t.owed += n
	t.changedLocked()
}

func (t *callTracker) changedLocked() {
	if t.changed != nil {
		close(t.changed)
		t.changed = nil
	}
}

// waitUntil returns once ok(answers owed, connections open) holds, or
// ctx is done.
func (t *callTracker) waitUntil(ctx context.Context, ok func(owed, open int) bool) {
	for {
		t.mu.Lock()
		if ok(t.owed, t.open) {
			t.mu.Unlock()
			return
		}
		if t.changed == nil {
			t.changed = make(chan struct{})
		}
		changed := t.changed
		t.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// handshaker wraps the connections ttrpc accepts, after h checked them
// (h wants the *net.UnixConn itself, so the listener's are not wrapped).
func (t *callTracker) handshaker(h ttrpc.Handshaker) ttrpc.Handshaker {
	return trackingHandshaker{h, t}
}

type trackingHandshaker struct {
	h ttrpc.Handshaker
	t *callTracker
}

func (th trackingHandshaker) Handshake(ctx context.Context, conn net.Conn) (net.Conn, any, error) {
	conn, info, err := th.h.Handshake(ctx, conn)
	if err != nil {
		return nil, nil, err
	}
	th.t.mu.Lock()
	th.t.open++
	th.t.mu.Unlock()
	return &trackedConn{Conn: conn, t: th.t}, info, nil
}

// trackedConn is a served connection. ttrpc reads it from one goroutine
// and writes it from another, so each direction has a scanner of its own.
type trackedConn struct {
	net.Conn
	t           *callTracker
	read, wrote frameScanner

	// under t.mu
	owed   int
	closed bool
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.scan(p[:n], func(typ byte) {
		if typ == frameRequest {
			c.t.add(c, 1)
		}
	})
	return n, err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.wrote.scan(p[:n], func(typ byte) {
		if typ == frameResponse {
			c.t.add(c, -1)
		}
	})
	return n, err
}

// Close lets go of the answers a connection still owed: its peer can no
// longer get them.
func (c *trackedConn) Close() error {
	c.t.mu.Lock()
	if !c.closed {
		c.closed = true
		c.t.owed -= c.owed
		c.owed = 0
		c.t.open--
		c.t.changedLocked()
	}
	c.t.mu.Unlock()
	return c.Conn.Close()
}

// frameScanner follows the frames in a stream of bytes.
type frameScanner struct {
	hdr  [frameHeaderLen]byte
	nhdr int    // header bytes seen of the current frame
	left uint32 // payload bytes still to come once the header is whole
}

// scan takes the next bytes of the stream and calls done with the type of
// each frame they complete.
func (s *frameScanner) scan(p []byte, done func(typ byte)) {
	for len(p) > 0 {
		if s.nhdr < frameHeaderLen {
			n := copy(s.hdr[s.nhdr:], p)
			s.nhdr += n
			p = p[n:]
			if s.nhdr < frameHeaderLen {
				return
			}
			s.left = binary.BigEndian.Uint32(s.hdr[:4])
		} else {
			n := uint32(len(p))
			if n > s.left {
				n = s.left
			}
			s.left -= n
			p = p[n:]
		}
		if s.left == 0 {
			done(s.hdr[8])
			s.nhdr = 0
		}
	}
}
