package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/llitfkitfk/containerd/api/convert"
	eventsapi "github.com/llitfkitfk/containerd/api/services/events/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/events"
)

type eventRemote struct {
	client eventsapi.EventsClient
}

// NewEventServiceFromClient publishes, forwards and subscribes to events
// through the daemon's Events service behind client.
func NewEventServiceFromClient(client eventsapi.EventsClient) EventService {
	return &eventRemote{client: client}
}

// Publish sends event on topic in the namespace of ctx; the daemon stamps
// it with the time.
func (e *eventRemote) Publish(ctx context.Context, topic string, event events.Event) error {
	a, err := events.MarshalEvent(event)
	if err != nil {
		return err
	}
	_, err = e.client.Publish(ctx, &eventsapi.PublishRequest{Topic: topic, Event: a})
	return errdefs.FromGRPC(err)
}

// Forward sends an event as it was published elsewhere, with its own time
// and namespace.
func (e *eventRemote) Forward(ctx context.Context, envelope *events.Envelope) error {
	_, err := e.client.Forward(ctx, &eventsapi.ForwardRequest{Envelope: convert.EnvelopeToProto(envelope)})
	return errdefs.FromGRPC(err)
}

// Subscribe streams the events that match any of filters (all if none),
// of every namespace, until ctx ends or the stream fails. The failure, if
// any, is the one value sent on errs, which is then closed; the end of ctx
// closes errs with nothing sent. ch is never closed, as with containerd's
// client: select on both.
func (e *eventRemote) Subscribe(ctx context.Context, filters ...string) (<-chan *events.Envelope, <-chan error) {
	ch := make(chan *events.Envelope)
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		fail := func(err error) {
			if ctx.Err() == nil {
				errs <- errdefs.FromGRPC(err)
			}
		}
		stream, err := e.client.Subscribe(ctx, &eventsapi.SubscribeRequest{Filters: filters})
		if err != nil {
			fail(err)
			return
		}
		for {
			env, err := stream.Recv()
			if err != nil {
				// The daemon ends the stream only when it stops.
				if errors.Is(err, io.EOF) {
					err = fmt.Errorf("event stream ended by the daemon: %w", errdefs.ErrUnavailable)
				}
				fail(err)
				return
			}
			select {
			case ch <- convert.EnvelopeFromProto(env):
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, errs
}
