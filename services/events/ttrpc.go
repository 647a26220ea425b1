package events

import (
	"context"

	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/emptypb"

	api "github.com/llitfkitfk/containerd/api/services/events/v1"
	ttrpcapi "github.com/llitfkitfk/containerd/api/services/ttrpc/events/v1"
)

// RegisterTTRPC serves event forwarding to shims, which publish their
// tasks' events (/tasks/exit and the rest) to the daemon over ttrpc.
func (s *service) RegisterTTRPC(server *ttrpc.Server) error {
	ttrpcapi.RegisterEventsService(server, &ttrpcService{s})
	return nil
}

type ttrpcService struct{ s *service }

func (t *ttrpcService) Forward(ctx context.Context, req *ttrpcapi.ForwardRequest) (*emptypb.Empty, error) {
	return t.s.Forward(ctx, &api.ForwardRequest{Envelope: req.Envelope})
}
