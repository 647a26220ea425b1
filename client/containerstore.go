package client

import (
	"context"
	"errors"
	"io"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/llitfkitfk/containerd/api/convert"
	containersapi "github.com/llitfkitfk/containerd/api/services/containers/v1"
	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/errdefs"
)

type remoteContainers struct {
	client containersapi.ContainersClient
}

// NewRemoteContainerStore is a containers.Store over the daemon's
// Containers service behind client. Specs and extensions pass through as
// the Any they are. Errors come back as errdefs kinds.
func NewRemoteContainerStore(client containersapi.ContainersClient) containers.Store {
	return &remoteContainers{client: client}
}

func (s *remoteContainers) Get(ctx context.Context, id string) (containers.Container, error) {
	resp, err := s.client.Get(ctx, &containersapi.GetContainerRequest{Id: id})
	if err != nil {
		return containers.Container{}, errdefs.FromGRPC(err)
	}
	return convert.ContainerFromProto(resp.Container), nil
}

// List streams the containers, so that a listing larger than one message
// allows still arrives; a daemon without ListStream (older ones) is asked
// with List.
func (s *remoteContainers) List(ctx context.Context, filters ...string) ([]containers.Container, error) {
	out, err := s.listStream(ctx, filters)
	if errdefs.IsNotImplemented(err) {
		return s.list(ctx, filters)
	}
	return out, err
}

func (s *remoteContainers) listStream(ctx context.Context, filters []string) ([]containers.Container, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.client.ListStream(ctx, &containersapi.ListContainersRequest{Filters: filters})
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	var out []containers.Container
	for {
		msg, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, errdefs.FromGRPC(err)
		}
		out = append(out, convert.ContainerFromProto(msg.Container))
	}
}

func (s *remoteContainers) list(ctx context.Context, filters []string) ([]containers.Container, error) {
	resp, err := s.client.List(ctx, &containersapi.ListContainersRequest{Filters: filters})
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	out := make([]containers.Container, len(resp.Containers))
	for i, c := range resp.Containers {
		out[i] = convert.ContainerFromProto(c)
	}
	return out, nil
}

func (s *remoteContainers) Create(ctx context.Context, c containers.Container) (containers.Container, error) {
	resp, err := s.client.Create(ctx, &containersapi.CreateContainerRequest{Container: convert.ContainerToProto(c)})
	if err != nil {
		return containers.Container{}, errdefs.FromGRPC(err)
	}
	return convert.ContainerFromProto(resp.Container), nil
}

// Update changes the fields named by fieldpaths; none changes every field
// that may change.
func (s *remoteContainers) Update(ctx context.Context, c containers.Container, fieldpaths ...string) (containers.Container, error) {
	req := &containersapi.UpdateContainerRequest{Container: convert.ContainerToProto(c)}
	if len(fieldpaths) > 0 {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: fieldpaths}
	}
	resp, err := s.client.Update(ctx, req)
	if err != nil {
		return containers.Container{}, errdefs.FromGRPC(err)
	}
	return convert.ContainerFromProto(resp.Container), nil
}

func (s *remoteContainers) Delete(ctx context.Context, id string) error {
	_, err := s.client.Delete(ctx, &containersapi.DeleteContainerRequest{Id: id})
	return errdefs.FromGRPC(err)
}
