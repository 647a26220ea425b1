// Package events defines the event envelope that the daemon broadcasts and
// the interfaces through which events are published and received.
package events

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/log"
)

// Event is any protobuf message published on a topic.
type Event = proto.Message

// Envelope is an event as delivered to subscribers: the encoded event with
// the namespace and topic it was published on and when.
type Envelope struct {
	Timestamp time.Time
	Namespace string
	Topic     string
	Event     *anypb.Any
}

// Publisher posts an event on a topic in the namespace of ctx.
type Publisher interface {
	Publish(ctx context.Context, topic string, event Event) error
}

// Forwarder passes on an envelope received from elsewhere, such as a shim,
// keeping its namespace and timestamp.
type Forwarder interface {
	Forward(ctx context.Context, envelope *Envelope) error
}

// Subscriber delivers the envelopes matching any of filters on ch until ctx
// is done or the subscription fails; errs then yields the failure, if any,
// and both channels are closed.
type Subscriber interface {
	Subscribe(ctx context.Context, filters ...string) (ch <-chan *Envelope, errs <-chan error)
}

// Announce publishes an event about a change that has already been made.
// The change stands whatever happens to the event, so a failure to publish
// is logged rather than returned to the caller.
func Announce(ctx context.Context, p Publisher, topic string, ev Event) {
	if err := p.Publish(ctx, topic, ev); err != nil {
		log.G(ctx).WithError(err).WithField("topic", topic).Error("failed to publish event")
	}
}
