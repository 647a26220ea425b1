package containers

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/llitfkitfk/containerd/api/convert"
	api "github.com/llitfkitfk/containerd/api/services/containers/v1"
	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.GRPCPlugin,
		ID:       "containers",
		Requires: []plugin.Type{plugin.ServicePlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			l, err := ic.GetByID(plugin.ServicePlugin, services.ContainersService)
			if err != nil {
				return nil, err
			}
			return &service{local: l.(containers.Store)}, nil
		},
	})
}

// service serves the Containers API over the local service.
type service struct {
	api.UnimplementedContainersServer
	local containers.Store
}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterContainersServer(server, s)
	return nil
}

func (s *service) Get(ctx context.Context, req *api.GetContainerRequest) (*api.GetContainerResponse, error) {
	c, err := s.local.Get(ctx, req.GetId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.GetContainerResponse{Container: convert.ContainerToProto(c)}, nil
}

func (s *service) List(ctx context.Context, req *api.ListContainersRequest) (*api.ListContainersResponse, error) {
	list, err := s.local.List(ctx, req.GetFilters()...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	resp := &api.ListContainersResponse{Containers: make([]*api.Container, len(list))}
	for i, c := range list {
		resp.Containers[i] = convert.ContainerToProto(c)
	}
	return resp, nil
}

// ListStream sends one container per message, so that no message grows
// past gRPC's size limit however many containers there are. The list is
// read in one transaction and so is consistent, as List's.
func (s *service) ListStream(req *api.ListContainersRequest, stream grpc.ServerStreamingServer[api.ListContainerMessage]) error {
	ctx := stream.Context()
	list, err := s.local.List(ctx, req.GetFilters()...)
	if err != nil {
		return errdefs.ToGRPC(err)
	}
	for _, c := range list {
		if err := ctx.Err(); err != nil {
			return errdefs.ToGRPC(err)
		}
		if err := stream.Send(&api.ListContainerMessage{Container: convert.ContainerToProto(c)}); err != nil {
			return err
		}
	}
	return nil
}

func (s *service) Create(ctx context.Context, req *api.CreateContainerRequest) (*api.CreateContainerResponse, error) {
	if req.GetContainer() == nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("container is required: %w", errdefs.ErrInvalidArgument))
	}
	created, err := s.local.Create(ctx, convert.ContainerFromProto(req.GetContainer()))
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.CreateContainerResponse{Container: convert.ContainerToProto(created)}, nil
}

// Update changes the fields the mask names; with none the store replaces
// every mutable field.
func (s *service) Update(ctx context.Context, req *api.UpdateContainerRequest) (*api.UpdateContainerResponse, error) {
	if req.GetContainer().GetId() == "" {
		return nil, errdefs.ToGRPC(fmt.Errorf("container id is required: %w", errdefs.ErrInvalidArgument))
	}
	updated, err := s.local.Update(ctx, convert.ContainerFromProto(req.GetContainer()), req.GetUpdateMask().GetPaths()...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.UpdateContainerResponse{Container: convert.ContainerToProto(updated)}, nil
}

func (s *service) Delete(ctx context.Context, req *api.DeleteContainerRequest) (*emptypb.Empty, error) {
	if err := s.local.Delete(ctx, req.GetId()); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}
