// Package leases serves the Leases API over the daemon's lease manager.
package leases

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	api "github.com/llitfkitfk/containerd/api/services/leases/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/leases"
)

type service struct {
	api.UnimplementedLeasesServer
	lm leases.Manager
}

func newService(lm leases.Manager) *service {
	return &service{lm: lm}
}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterLeasesServer(server, s)
	return nil
}

// Create makes a lease with the given id, or a random one when it is empty.
func (s *service) Create(ctx context.Context, req *api.CreateRequest) (*api.CreateResponse, error) {
	opts := []leases.Opt{leases.WithLabels(req.Labels)}
	if req.Id != "" {
		opts = append(opts, leases.WithID(req.Id))
	}
	l, err := s.lm.Create(ctx, opts...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.CreateResponse{Lease: leaseToProto(l)}, nil
}

// Delete removes a lease; with sync it returns once garbage collection has
// removed what the lease alone held.
func (s *service) Delete(ctx context.Context, req *api.DeleteRequest) (*emptypb.Empty, error) {
	var opts []leases.DeleteOpt
	if req.Sync {
		opts = append(opts, leases.SynchronousDelete)
	}
	if err := s.lm.Delete(ctx, leases.Lease{ID: req.Id}, opts...); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) List(ctx context.Context, req *api.ListRequest) (*api.ListResponse, error) {
	ls, err := s.lm.List(ctx, req.Filters...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	resp := &api.ListResponse{Leases: make([]*api.Lease, 0, len(ls))}
	for _, l := range ls {
		resp.Leases = append(resp.Leases, leaseToProto(l))
	}
	return resp, nil
}

func (s *service) AddResource(ctx context.Context, req *api.AddResourceRequest) (*emptypb.Empty, error) {
	r, err := resourceFromProto(req.Resource)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if err := s.lm.AddResource(ctx, leases.Lease{ID: req.Id}, r); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) DeleteResource(ctx context.Context, req *api.DeleteResourceRequest) (*emptypb.Empty, error) {
	r, err := resourceFromProto(req.Resource)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if err := s.lm.DeleteResource(ctx, leases.Lease{ID: req.Id}, r); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) ListResources(ctx context.Context, req *api.ListResourcesRequest) (*api.ListResourcesResponse, error) {
	rs, err := s.lm.ListResources(ctx, leases.Lease{ID: req.Id})
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	resp := &api.ListResourcesResponse{Resources: make([]*api.Resource, 0, len(rs))}
	for _, r := range rs {
		resp.Resources = append(resp.Resources, &api.Resource{Id: r.ID, Type: r.Type})
	}
	return resp, nil
}

func resourceFromProto(r *api.Resource) (leases.Resource, error) {
	if r == nil {
		return leases.Resource{}, fmt.Errorf("resource is required: %w", errdefs.ErrInvalidArgument)
	}
	return leases.Resource{ID: r.Id, Type: r.Type}, nil
}

func leaseToProto(l leases.Lease) *api.Lease {
	return &api.Lease{
		Id:        l.ID,
		CreatedAt: timestamppb.New(l.CreatedAt),
		Labels:    l.Labels,
	}
}
