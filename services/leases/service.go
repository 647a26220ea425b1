package leases

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/llitfkitfk/containerd/api/convert"
	api "github.com/llitfkitfk/containerd/api/services/leases/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.GRPCPlugin,
		ID:       "leases",
		Requires: []plugin.Type{plugin.ServicePlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			l, err := ic.GetByID(plugin.ServicePlugin, services.LeasesService)
			if err != nil {
				return nil, err
			}
			return &service{local: l.(leases.Manager)}, nil
		},
	})
}

// service serves the Leases API over the local service.
type service struct {
	api.UnimplementedLeasesServer
	local leases.Manager
}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterLeasesServer(server, s)
	return nil
}

// Create makes a lease with the given id, or a random one when it is empty.
func (s *service) Create(ctx context.Context, req *api.CreateRequest) (*api.CreateResponse, error) {
	opts := []leases.Opt{leases.WithLabels(req.GetLabels())}
	if req.GetId() != "" {
		opts = append(opts, leases.WithID(req.GetId()))
	}
	l, err := s.local.Create(ctx, opts...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.CreateResponse{Lease: convert.LeaseToProto(l)}, nil
}

// Delete removes a lease; with sync it returns once garbage collection has
// removed what the lease alone held.
func (s *service) Delete(ctx context.Context, req *api.DeleteRequest) (*emptypb.Empty, error) {
	var opts []leases.DeleteOpt
	if req.GetSync() {
		opts = append(opts, leases.SynchronousDelete)
	}
	if err := s.local.Delete(ctx, leases.Lease{ID: req.GetId()}, opts...); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) List(ctx context.Context, req *api.ListRequest) (*api.ListResponse, error) {
	list, err := s.local.List(ctx, req.GetFilters()...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	resp := &api.ListResponse{Leases: make([]*api.Lease, len(list))}
	for i, l := range list {
		resp.Leases[i] = convert.LeaseToProto(l)
	}
	return resp, nil
}

func (s *service) AddResource(ctx context.Context, req *api.AddResourceRequest) (*emptypb.Empty, error) {
	r := convert.LeaseResourceFromProto(req.GetResource())
	if err := s.local.AddResource(ctx, leases.Lease{ID: req.GetId()}, r); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) DeleteResource(ctx context.Context, req *api.DeleteResourceRequest) (*emptypb.Empty, error) {
	r := convert.LeaseResourceFromProto(req.GetResource())
	if err := s.local.DeleteResource(ctx, leases.Lease{ID: req.GetId()}, r); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) ListResources(ctx context.Context, req *api.ListResourcesRequest) (*api.ListResourcesResponse, error) {
	rs, err := s.local.ListResources(ctx, leases.Lease{ID: req.GetId()})
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	resp := &api.ListResourcesResponse{Resources: make([]*api.Resource, len(rs))}
	for i, r := range rs {
		resp.Resources[i] = convert.LeaseResourceToProto(r)
	}
	return resp, nil
}
