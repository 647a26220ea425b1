// Package version serves the daemon's version: the first call a client
// makes, and the cheapest check that the daemon answers.
package version

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	api "github.com/llitfkitfk/containerd/api/services/version/v1"
	"github.com/llitfkitfk/containerd/plugin"
	ctrdversion "github.com/llitfkitfk/containerd/version"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type: plugin.GRPCPlugin,
		ID:   "version",
		InitFn: func(*plugin.InitContext) (interface{}, error) {
			return &service{}, nil
		},
	})
}

type service struct {
	api.UnimplementedVersionServer
}

// The response never changes, so it is built once.
var response = &api.VersionResponse{Version: ctrdversion.Version, Revision: ctrdversion.Revision}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterVersionServer(server, s)
	return nil
}

func (s *service) Version(context.Context, *emptypb.Empty) (*api.VersionResponse, error) {
	return response, nil
}
