package streaming

import (
	"fmt"
	"io"
	"sync"

	"google.golang.org/protobuf/types/known/anypb"
)

// Pipe returns two connected in-memory streams, for tests and in-process
// callers. Each direction buffers up to 16 messages, after which Send
// blocks as a transport would. Closing either end ends the exchange as a
// daemon-side Close ends the RPC: its peer's Recv returns io.EOF once the
// buffered messages are read, and Sends in either direction fail.
func Pipe() (Stream, Stream) {
	p := &pipe{done: make(chan struct{})}
	ab := make(chan *anypb.Any, 16)
	ba := make(chan *anypb.Any, 16)
	return &pipeEnd{p: p, in: ba, out: ab}, &pipeEnd{p: p, in: ab, out: ba}
}

type pipe struct {
	once sync.Once
	done chan struct{}
}

type pipeEnd struct {
	p      *pipe
	sendMu sync.Mutex
	in     <-chan *anypb.Any
	out    chan<- *anypb.Any
}

func (e *pipeEnd) Send(a *anypb.Any) error {
	e.sendMu.Lock()
	defer e.sendMu.Unlock()
	select {
	case <-e.p.done:
		return fmt.Errorf("send: %w", ErrClosed)
	default:
	}
	select {
	case e.out <- a:
		return nil
	case <-e.p.done:
		return fmt.Errorf("send: %w", ErrClosed)
	}
}

func (e *pipeEnd) Recv() (*anypb.Any, error) {
	select {
	case a := <-e.in:
		return a, nil
	case <-e.p.done:
		// Deliver what was sent before the close.
		select {
		case a := <-e.in:
			return a, nil
		default:
			return nil, io.EOF
		}
	}
}

func (e *pipeEnd) Close() error {
	e.p.once.Do(func() { close(e.p.done) })
	return nil
}
