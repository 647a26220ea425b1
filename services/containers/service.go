// Package containers serves the Containers API over the daemon's
// namespaced container store and announces changes as /containers/*
// events.
package containers

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventstypes "github.com/llitfkitfk/containerd/api/events"
	api "github.com/llitfkitfk/containerd/api/services/containers/v1"
	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/events"
)

type service struct {
	api.UnimplementedContainersServer
	store     containers.Store
	publisher events.Publisher
}

func newService(store containers.Store, publisher events.Publisher) *service {
	return &service{store: store, publisher: publisher}
}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterContainersServer(server, s)
	return nil
}

func (s *service) Get(ctx context.Context, req *api.GetContainerRequest) (*api.GetContainerResponse, error) {
	c, err := s.store.Get(ctx, req.GetId())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.GetContainerResponse{Container: containerToProto(c)}, nil
}

func (s *service) List(ctx context.Context, req *api.ListContainersRequest) (*api.ListContainersResponse, error) {
	list, err := s.store.List(ctx, req.GetFilters()...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	resp := &api.ListContainersResponse{Containers: make([]*api.Container, 0, len(list))}
	for _, c := range list {
		resp.Containers = append(resp.Containers, containerToProto(c))
	}
	return resp, nil
}

// ListStream sends one container per message, so that no message grows
// past gRPC's size limit however many containers there are. The list is
// read in one transaction and so is consistent, as List's.
func (s *service) ListStream(req *api.ListContainersRequest, stream grpc.ServerStreamingServer[api.ListContainerMessage]) error {
	ctx := stream.Context()
	list, err := s.store.List(ctx, req.GetFilters()...)
	if err != nil {
		return errdefs.ToGRPC(err)
	}
	for _, c := range list {
		if err := ctx.Err(); err != nil {
			return errdefs.ToGRPC(err)
		}
		if err := stream.Send(&api.ListContainerMessage{Container: containerToProto(c)}); err != nil {
			return err
		}
	}
	return nil
}

func (s *service) Create(ctx context.Context, req *api.CreateContainerRequest) (*api.CreateContainerResponse, error) {
	if req.GetContainer() == nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("container is required: %w", errdefs.ErrInvalidArgument))
	}
	created, err := s.store.Create(ctx, containerFromProto(req.GetContainer()))
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	events.Announce(ctx, s.publisher, "/containers/create", &eventstypes.ContainerCreate{
		Id:    created.ID,
		Image: created.Image,
		Runtime: &eventstypes.ContainerCreate_Runtime{
			Name:    created.Runtime.Name,
			Options: created.Runtime.Options,
		},
	})
	return &api.CreateContainerResponse{Container: containerToProto(created)}, nil
}

// Update changes the fields the mask names; with none the store replaces
// every mutable field.
func (s *service) Update(ctx context.Context, req *api.UpdateContainerRequest) (*api.UpdateContainerResponse, error) {
	if req.GetContainer().GetId() == "" {
		return nil, errdefs.ToGRPC(fmt.Errorf("container id is required: %w", errdefs.ErrInvalidArgument))
	}
	updated, err := s.store.Update(ctx, containerFromProto(req.GetContainer()), req.GetUpdateMask().GetPaths()...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	events.Announce(ctx, s.publisher, "/containers/update", &eventstypes.ContainerUpdate{
		Id:          updated.ID,
		Image:       updated.Image,
		Labels:      updated.Labels,
		SnapshotKey: updated.SnapshotKey,
	})
	return &api.UpdateContainerResponse{Container: containerToProto(updated)}, nil
}

// Delete removes the record only: a task the container still has is the
// client's to delete first, as in containerd.
func (s *service) Delete(ctx context.Context, req *api.DeleteContainerRequest) (*emptypb.Empty, error) {
	if err := s.store.Delete(ctx, req.GetId()); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	events.Announce(ctx, s.publisher, "/containers/delete", &eventstypes.ContainerDelete{Id: req.GetId()})
	return &emptypb.Empty{}, nil
}

func containerToProto(c containers.Container) *api.Container {
	return &api.Container{
		Id:     c.ID,
		Labels: c.Labels,
		Image:  c.Image,
		Runtime: &api.Container_Runtime{
			Name:    c.Runtime.Name,
			Options: c.Runtime.Options,
		},
		Spec:        c.Spec,
		Snapshotter: c.Snapshotter,
		SnapshotKey: c.SnapshotKey,
		CreatedAt:   timestamppb.New(c.CreatedAt),
		UpdatedAt:   timestamppb.New(c.UpdatedAt),
		Extensions:  c.Extensions,
		Sandbox:     c.SandboxID,
	}
}

func containerFromProto(c *api.Container) containers.Container {
	return containers.Container{
		ID:     c.GetId(),
		Labels: c.GetLabels(),
		Image:  c.GetImage(),
		Runtime: containers.RuntimeInfo{
			Name:    c.GetRuntime().GetName(),
			Options: c.GetRuntime().GetOptions(),
		},
		Spec:        c.GetSpec(),
		Snapshotter: c.GetSnapshotter(),
		SnapshotKey: c.GetSnapshotKey(),
		CreatedAt:   fromTimestamp(c.GetCreatedAt()),
		UpdatedAt:   fromTimestamp(c.GetUpdatedAt()),
		Extensions:  c.GetExtensions(),
		SandboxID:   c.GetSandbox(),
	}
}

func fromTimestamp(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}
