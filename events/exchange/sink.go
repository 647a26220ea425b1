package exchange

import (
	"context"
	"errors"

	goevents "github.com/docker/go-events"

	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/filters"
)

// sink is a subscriber's place on the broadcaster. The broadcaster calls
// Write from its one goroutine for every event, so Write must not block: it
// filters, queues without waiting, and gives the subscriber up when the
// queue is full.
type sink struct {
	filter   filters.Filter // nil matches everything
	queue    chan *events.Envelope
	overflow chan struct{} // closed when the queue overflowed
	dropped  bool          // only touched by the broadcaster goroutine
}

// Write queues ev for the subscriber. On overflow it reports ErrSinkClosed,
// which makes the broadcaster drop the sink at once and without logging.
func (s *sink) Write(ev goevents.Event) error {
	if s.dropped {
		return goevents.ErrSinkClosed
	}
	env, ok := ev.(*events.Envelope)
	if !ok || (s.filter != nil && !s.filter.Match(env)) {
		return nil
	}
	select {
	case s.queue <- env:
		return nil
	default:
		s.dropped = true
		close(s.overflow)
		return goevents.ErrSinkClosed
	}
}

// Close is called by the broadcaster when it shuts down; the delivering
// goroutine is ended by its context instead.
func (s *sink) Close() error { return nil }

// deliver passes queued envelopes to out until ctx is done or the queue
// overflows. A full queue ends delivery at once rather than after the
// backlog, so a subscriber that is gone is let go promptly.
func (s *sink) deliver(ctx context.Context, out chan<- *events.Envelope) error {
	for {
		select {
		case <-s.overflow:
			return errFellBehind
		default:
		}

		select {
		case <-s.overflow:
			return errFellBehind
		case <-ctx.Done():
			return contextError(ctx)
		case env := <-s.queue:
			select {
			case out <- env:
			case <-s.overflow:
				return errFellBehind
			case <-ctx.Done():
				return contextError(ctx)
			}
		}
	}
}

// contextError follows containerd: canceling is how a subscriber says it is
// done, so only other causes, such as a deadline, are reported.
func contextError(ctx context.Context) error {
	if err := ctx.Err(); !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
