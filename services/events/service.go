// Package events serves the events API: clients publish and forward events
// into the daemon's exchange and subscribe to it with filters.
package events

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/llitfkitfk/containerd/api/convert"
	api "github.com/llitfkitfk/containerd/api/services/events/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/plugin"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type: plugin.GRPCPlugin,
		ID:   "events",
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			return &service{events: ic.Events, stop: ic.Context.Done()}, nil
		},
	})
}

type service struct {
	api.UnimplementedEventsServer
	events plugin.Exchange
	// stop closes when the daemon shuts down, ending subscriptions so that
	// they do not hold up a graceful stop.
	stop <-chan struct{}
}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterEventsServer(server, s)
	return nil
}

// Publish takes an event already packed in an Any, so it is forwarded in an
// envelope made here rather than packed a second time.
func (s *service) Publish(ctx context.Context, req *api.PublishRequest) (*emptypb.Empty, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if req.Event == nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("event is required: %w", errdefs.ErrInvalidArgument))
	}
	env := &events.Envelope{Timestamp: time.Now().UTC(), Namespace: ns, Topic: req.Topic, Event: req.Event}
	if err := s.events.Forward(ctx, env); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) Forward(ctx context.Context, req *api.ForwardRequest) (*emptypb.Empty, error) {
	e := req.GetEnvelope()
	if e == nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("envelope is required: %w", errdefs.ErrInvalidArgument))
	}
	if err := s.events.Forward(ctx, convert.EnvelopeFromProto(e)); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

// Subscribe streams the events matching any of the filters until the
// client goes, the daemon stops or the subscription fails: filters that do
// not parse (InvalidArgument), or a subscriber that fell behind
// (Unavailable).
func (s *service) Subscribe(req *api.SubscribeRequest, stream api.Events_SubscribeServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	eventq, errq := s.events.Subscribe(ctx, req.Filters...)
	for {
		select {
		case ev, ok := <-eventq:
			if !ok {
				// The subscription ended; why is on errq, which is
				// closed right after eventq. Both are ready at once when
				// it fails at the start, so the reason must be read here
				// rather than left to a select that may pick this case.
				return errdefs.ToGRPC(<-errq)
			}
			if err := stream.Send(convert.EnvelopeToProto(ev)); err != nil {
				return err // the client went away
			}
		case err := <-errq:
			return errdefs.ToGRPC(err)
		case <-s.stop:
			return nil
		}
	}
}
