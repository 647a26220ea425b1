package namespaces

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/llitfkitfk/containerd/api/convert"
	api "github.com/llitfkitfk/containerd/api/services/namespaces/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.GRPCPlugin,
		ID:       "namespaces",
		Requires: []plugin.Type{plugin.ServicePlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			m, err := ic.GetByID(plugin.ServicePlugin, services.NamespacesService)
			if err != nil {
				return nil, err
			}
			return &service{local: m.(namespaces.Manager)}, nil
		},
	})
}

// service serves the Namespaces API over the local service.
type service struct {
	api.UnimplementedNamespacesServer
	local namespaces.Manager
}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterNamespacesServer(server, s)
	return nil
}

func (s *service) Get(ctx context.Context, req *api.GetNamespaceRequest) (*api.GetNamespaceResponse, error) {
	ns, err := s.local.Get(ctx, req.GetName())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.GetNamespaceResponse{Namespace: convert.NamespaceToProto(ns)}, nil
}

func (s *service) List(ctx context.Context, req *api.ListNamespacesRequest) (*api.ListNamespacesResponse, error) {
	list, err := s.local.List(ctx)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	resp := &api.ListNamespacesResponse{Namespaces: make([]*api.Namespace, len(list))}
	for i, ns := range list {
		resp.Namespaces[i] = convert.NamespaceToProto(ns)
	}
	return resp, nil
}

func (s *service) Create(ctx context.Context, req *api.CreateNamespaceRequest) (*api.CreateNamespaceResponse, error) {
	if req.GetNamespace() == nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("namespace is required: %w", errdefs.ErrInvalidArgument))
	}
	ns, err := s.local.Create(ctx, convert.NamespaceFromProto(req.GetNamespace()))
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.CreateNamespaceResponse{Namespace: convert.NamespaceToProto(ns)}, nil
}

func (s *service) Update(ctx context.Context, req *api.UpdateNamespaceRequest) (*api.UpdateNamespaceResponse, error) {
	if req.GetNamespace() == nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("namespace is required: %w", errdefs.ErrInvalidArgument))
	}
	ns, err := s.local.Update(ctx, convert.NamespaceFromProto(req.GetNamespace()), req.GetUpdateMask().GetPaths()...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.UpdateNamespaceResponse{Namespace: convert.NamespaceToProto(ns)}, nil
}

func (s *service) Delete(ctx context.Context, req *api.DeleteNamespaceRequest) (*emptypb.Empty, error) {
	if err := s.local.Delete(ctx, req.GetName()); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}
