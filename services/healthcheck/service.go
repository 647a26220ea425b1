// Package healthcheck serves the standard gRPC health service, so that
// generic tooling can probe the daemon.
package healthcheck

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/llitfkitfk/containerd/plugin"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type: plugin.GRPCPlugin,
		ID:   "healthcheck",
		InitFn: func(*plugin.InitContext) (interface{}, error) {
			return &service{health.NewServer()}, nil
		},
	})
}

type service struct {
	server *health.Server
}

func (s *service) Register(server *grpc.Server) error {
	grpc_health_v1.RegisterHealthServer(server, s.server)
	return nil
}

// Close reports NOT_SERVING to anyone watching while the daemon stops.
func (s *service) Close() error {
	s.server.Shutdown()
	return nil
}
