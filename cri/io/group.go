package io

import (
	"errors"
	"io"
	"sync"

	"github.com/llitfkitfk/containerd/log"
)

// group fans one stream of a process out to named outputs. Writes to the
// outputs happen under the lock, so that AddOutput swaps an output between
// two writes: a replaced log writer gets everything up to the swap and its
// successor everything after. Outputs that may be slow (attached clients)
// are clientWriters, whose Writes only queue.
type group struct {
	mu      sync.Mutex
	outputs map[string]io.WriteCloser
	closed  bool
}

func newGroup() *group { return &group{outputs: map[string]io.WriteCloser{}} }

// add sets the output of key and returns the one it replaced. Once the
// stream has ended, w is closed at once: there will be nothing to write.
func (g *group) add(key string, w io.WriteCloser) io.WriteCloser {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		w.Close()
		return nil
	}
	old := g.outputs[key]
	g.outputs[key] = w
	g.mu.Unlock()
	return old
}

// remove closes and forgets the output of key if it is still w.
func (g *group) remove(key string, w io.WriteCloser) {
	g.mu.Lock()
	cur, ok := g.outputs[key]
	if ok && cur == w {
		delete(g.outputs, key)
	}
	g.mu.Unlock()
	if ok && cur == w {
		w.Close()
	}
}

// Write copies p to every output; one that fails is closed and dropped.
// It never fails itself: the process's output is drained whoever listens,
// or the process would block on a full pipe.
func (g *group) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for key, w := range g.outputs {
		if n, err := w.Write(p); err != nil || n != len(p) {
			if err == nil {
				err = io.ErrShortWrite
			}
			log.L.WithError(err).Debugf("dropping output %q", key)
			delete(g.outputs, key)
			w.Close()
		}
	}
	return len(p), nil
}

// close ends the stream: every output is closed (a log output's Close
// waits for its lines to be flushed) and later outputs are closed on add.
func (g *group) close() {
	g.mu.Lock()
	outputs := g.outputs
	g.outputs = nil
	g.closed = true
	g.mu.Unlock()
	for _, w := range outputs {
		w.Close()
	}
}

// maxClientBacklog is how much output an attached client may fall behind
// by before it is dropped: it must not hold up the log or other clients,
// and dropping it is more honest than a stream with holes.
const maxClientBacklog = 1 << 20

var errClientTooSlow = errors.New("attached client too slow: more than 1 MiB of output not yet taken")

// clientWriter queues writes for an attached client and sends them from a
// goroutine of its own, so that Write never blocks. Close lets the queue
// drain before closing the client's stream; a failed or too slow client is
// dropped without draining, its stream closed at once (which is what ends
// a send stuck on a client that no longer reads). done is closed once the
// sending has ended.
type clientWriter struct {
	w         io.WriteCloser
	closeOnce sync.Once
	mu        sync.Mutex
	cond      sync.Cond
	// queue is what the client has yet to be sent.
	queue   []byte
	closing bool
	err     error
	done    chan struct{}
}

func newClientWriter(w io.WriteCloser) *clientWriter {
	c := &clientWriter{w: w, done: make(chan struct{})}
	c.cond.L = &c.mu
	go c.run()
	return c
}

func (c *clientWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.err != nil:
		return 0, c.err
	case c.closing:
		return 0, io.ErrClosedPipe
	case len(c.queue)+len(p) > maxClientBacklog:
		c.err = errClientTooSlow
		c.queue = nil
		c.cond.Signal()
		go c.closeStream()
		return 0, c.err
	}
	c.queue = append(c.queue, p...)
	c.cond.Signal()
	return len(p), nil
}

func (c *clientWriter) Close() error {
	c.mu.Lock()
	c.closing = true
	c.cond.Signal()
	c.mu.Unlock()
	return nil
}

func (c *clientWriter) closeStream() {
	c.closeOnce.Do(func() { c.w.Close() })
}

func (c *clientWriter) run() {
	defer close(c.done)
	defer c.closeStream()
	var spare []byte
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && !c.closing && c.err == nil {
			c.cond.Wait()
		}
		if c.err != nil || len(c.queue) == 0 {
			// Dropped, or closed with everything sent.
			c.mu.Unlock()
			return
		}
		buf := c.queue
		c.queue = spare[:0]
		c.mu.Unlock()

		if _, err := c.w.Write(buf); err != nil {
			c.mu.Lock()
			c.err = err
			c.queue = nil
			c.mu.Unlock()
			return
		}
		spare = buf
	}
}
