package introspection

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/llitfkitfk/containerd/api/convert"
	api "github.com/llitfkitfk/containerd/api/services/introspection/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type: plugin.GRPCPlugin,
		ID:   "introspection",
		// After every other plugin, as containerd: clients find it last.
		Requires: []plugin.Type{plugin.All},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			l, err := ic.GetByID(plugin.ServicePlugin, services.IntrospectionService)
			if err != nil {
				return nil, err
			}
			return &service{local: l.(*Local)}, nil
		},
	})
}

// service serves the Introspection API over the local service.
type service struct {
	api.UnimplementedIntrospectionServer
	local *Local
}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterIntrospectionServer(server, s)
	return nil
}

func (s *service) Plugins(ctx context.Context, req *api.PluginsRequest) (*api.PluginsResponse, error) {
	ps, err := s.local.Plugins(ctx, req.GetFilters()...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	resp := &api.PluginsResponse{Plugins: make([]*api.Plugin, len(ps))}
	for i, p := range ps {
		resp.Plugins[i] = convert.PluginToProto(p)
	}
	return resp, nil
}

func (s *service) PluginInfo(ctx context.Context, req *api.PluginInfoRequest) (*api.PluginInfoResponse, error) {
	p, err := s.local.Plugin(ctx, req.GetType(), req.GetId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if req.GetOptions() != nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("plugin %s.%s takes no info options: %w", req.GetType(), req.GetId(), errdefs.ErrNotImplemented))
	}
	return &api.PluginInfoResponse{Plugin: convert.PluginToProto(p)}, nil
}

func (s *service) Server(ctx context.Context, _ *emptypb.Empty) (*api.ServerResponse, error) {
	info, err := s.local.Server(ctx)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.ServerResponse{Uuid: info.UUID, Pid: uint64(info.PID), Pidns: info.PIDNS}, nil
}
