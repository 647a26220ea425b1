// Package exchange broadcasts events from publishers to subscribers within
// the daemon.
package exchange

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	goevents "github.com/docker/go-events"
	"github.com/sirupsen/logrus"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/filters"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/namespaces"
)

// DefaultQueueSize is how many envelopes may wait for a subscriber before it
// is considered to have fallen behind and is dropped.
const DefaultQueueSize = 1024

// Exchange fans events out to subscribers. Publishers never wait for
// subscribers: each one has a bounded queue of its own, and one that lets it
// fill is ended with an Unavailable error rather than slowing everyone else
// down or growing without bound.
type Exchange struct {
	broadcaster *goevents.Broadcaster
	queueSize   int
	subscribers atomic.Int64 // subscriptions whose sink is on the broadcaster
}

var (
	_ events.Publisher  = (*Exchange)(nil)
	_ events.Forwarder  = (*Exchange)(nil)
	_ events.Subscriber = (*Exchange)(nil)
)

// Option configures an Exchange.
type Option func(*Exchange)

// WithQueueSize sets how many envelopes each subscriber may have waiting;
// values below 1 are treated as 1.
func WithQueueSize(n int) Option {
	return func(e *Exchange) { e.queueSize = max(n, 1) }
}

// NewExchange returns an Exchange ready for use.
func NewExchange(opts ...Option) *Exchange {
	e := &Exchange{
		broadcaster: goevents.NewBroadcaster(),
		queueSize:   DefaultQueueSize,
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Publish sends event on topic in the namespace of ctx, stamped with the
// current time.
func (e *Exchange) Publish(ctx context.Context, topic string, event events.Event) error {
	namespace, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return fmt.Errorf("publish event: %w", err)
	}
	if err := validateTopic(topic); err != nil {
		return fmt.Errorf("publish event: topic %q: %w", topic, err)
	}
	encoded, err := events.MarshalEvent(event)
	if err != nil {
		return fmt.Errorf("publish event on %s: %w", topic, err)
	}
	return e.broadcaster.Write(&events.Envelope{
		Timestamp: time.Now().UTC(),
		Namespace: namespace,
		Topic:     topic,
		Event:     encoded,
	})
}

// Forward sends an envelope published elsewhere, such as by a shim, as it is.
// Subscribers share the envelope, so the caller must not change it later.
func (e *Exchange) Forward(ctx context.Context, envelope *events.Envelope) error {
	if err := validateEnvelope(envelope); err != nil {
		return fmt.Errorf("forward event: %w", err)
	}
	return e.broadcaster.Write(envelope)
}

// Subscribe delivers the envelopes that match any of filters, or every
// envelope when none are given. Delivery ends when ctx is done, when the
// filters do not parse, or when the subscriber falls behind by more than the
// queue size; errs then yields the reason (nothing for a plain cancel) and
// both channels are closed.
func (e *Exchange) Subscribe(ctx context.Context, filters ...string) (<-chan *events.Envelope, <-chan error) {
	evch := make(chan *events.Envelope)
	errq := make(chan error, 1) // room for the one error, so it never blocks

	s, err := e.newSink(filters)
	if err == nil {
		err = e.broadcaster.Add(s)
	}
	if err != nil {
		errq <- fmt.Errorf("subscribe: %w", err)
		close(errq)
		close(evch)
		return evch, errq
	}
	e.subscribers.Add(1)

	go func() {
		defer func() {
			// Remove never waits on a subscriber, since no sink blocks the
			// broadcaster; it is a no-op for a sink already dropped.
			_ = e.broadcaster.Remove(s)
			e.subscribers.Add(-1)
			close(evch)
			close(errq)
		}()
		if err := s.deliver(ctx, evch); err != nil {
			if err == errFellBehind {
				// Said here, once per subscriber, rather than where the
				// broadcaster finds the queue full: it must not wait on
				// a log write, and a stalled subscriber is the operator's
				// to know of (a client that stopped reading, or one too
				// slow for the daemon's event rate).
				log.G(ctx).WithFields(logrus.Fields{
					"filters": filters,
					"queued":  e.queueSize,
				}).Warn("dropped an event subscriber that stopped reading: its queue of events was full")
			}
			errq <- err
		}
	}()
	return evch, errq
}

func (e *Exchange) newSink(fs []string) (*sink, error) {
	s := &sink{
		queue:    make(chan *events.Envelope, e.queueSize),
		overflow: make(chan struct{}),
	}
	if len(fs) > 0 {
		f, err := filters.ParseAll(fs...)
		if err != nil {
			return nil, fmt.Errorf("parsing filters: %w", err)
		}
		s.filter = f
	}
	return s, nil
}

var errFellBehind = fmt.Errorf("event subscriber fell behind: %w", errdefs.ErrUnavailable)
