// Package images serves the Images API over the daemon's namespaced image
// store and announces changes as /images/* events.
package images

import (
	"context"
	"fmt"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventstypes "github.com/llitfkitfk/containerd/api/events"
	api "github.com/llitfkitfk/containerd/api/services/images/v1"
	"github.com/llitfkitfk/containerd/api/types"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/images"
)

type service struct {
	api.UnimplementedImagesServer
	store     images.Store
	publisher events.Publisher
}

func newService(store images.Store, publisher events.Publisher) *service {
	return &service{store: store, publisher: publisher}
}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterImagesServer(server, s)
	return nil
}

func (s *service) Get(ctx context.Context, req *api.GetImageRequest) (*api.GetImageResponse, error) {
	image, err := s.store.Get(ctx, req.Name)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.GetImageResponse{Image: imageToProto(image)}, nil
}

func (s *service) List(ctx context.Context, req *api.ListImagesRequest) (*api.ListImagesResponse, error) {
	list, err := s.store.List(ctx, req.Filters...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	resp := &api.ListImagesResponse{Images: make([]*api.Image, 0, len(list))}
	for _, image := range list {
		resp.Images = append(resp.Images, imageToProto(image))
	}
	return resp, nil
}

func (s *service) Create(ctx context.Context, req *api.CreateImageRequest) (*api.CreateImageResponse, error) {
	if err := checkImage(req.Image); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	created, err := s.store.Create(ctx, imageFromProto(req.Image))
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	resp := &api.CreateImageResponse{Image: imageToProto(created)}
	events.Announce(ctx, s.publisher, "/images/create", &eventstypes.ImageCreate{Name: created.Name, Labels: created.Labels})
	return resp, nil
}

// Update changes the fields the mask names ("labels", "labels.<key>",
// "target", "annotations"...); with none the store replaces labels and
// target.
func (s *service) Update(ctx context.Context, req *api.UpdateImageRequest) (*api.UpdateImageResponse, error) {
	if err := checkImage(req.Image); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	updated, err := s.store.Update(ctx, imageFromProto(req.Image), req.GetUpdateMask().GetPaths()...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	resp := &api.UpdateImageResponse{Image: imageToProto(updated)}
	events.Announce(ctx, s.publisher, "/images/update", &eventstypes.ImageUpdate{Name: updated.Name, Labels: updated.Labels})
	return resp, nil
}

// Delete removes an image; with target set only if it still points there,
// with sync only once garbage collection has removed what it alone held.
func (s *service) Delete(ctx context.Context, req *api.DeleteImageRequest) (*emptypb.Empty, error) {
	var opts []images.DeleteOpt
	if req.Target != nil {
		target, err := descFromProto(req.Target)
		if err != nil {
			return nil, errdefs.ToGRPC(err)
		}
		opts = append(opts, images.DeleteTarget(&target))
	}
	if req.Sync {
		opts = append(opts, images.SynchronousDelete())
	}
	if err := s.store.Delete(ctx, req.Name, opts...); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	events.Announce(ctx, s.publisher, "/images/delete", &eventstypes.ImageDelete{Name: req.Name})
	return &emptypb.Empty{}, nil
}

// checkImage rejects what no store could take: no image, no name, or a
// target digest that does not parse. The store checks the rest.
func checkImage(image *api.Image) error {
	if image == nil {
		return fmt.Errorf("image is required: %w", errdefs.ErrInvalidArgument)
	}
	if image.Name == "" {
		return fmt.Errorf("image name is required: %w", errdefs.ErrInvalidArgument)
	}
	if image.Target != nil && image.Target.Digest != "" {
		if _, err := descFromProto(image.Target); err != nil {
			return fmt.Errorf("image %q: %w", image.Name, err)
		}
	}
	return nil
}

func imageToProto(image images.Image) *api.Image {
	return &api.Image{
		Name:      image.Name,
		Labels:    image.Labels,
		Target:    descToProto(image.Target),
		CreatedAt: timestamppb.New(image.CreatedAt),
		UpdatedAt: timestamppb.New(image.UpdatedAt),
	}
}

// imageFromProto keeps a target digest as sent; checkImage has parsed it
// where it matters.
func imageFromProto(image *api.Image) images.Image {
	out := images.Image{
		Name:      image.Name,
		Labels:    image.Labels,
		CreatedAt: fromTimestamp(image.CreatedAt),
		UpdatedAt: fromTimestamp(image.UpdatedAt),
	}
	if t := image.Target; t != nil {
		out.Target = ocispec.Descriptor{
			MediaType:   t.MediaType,
			Digest:      digest.Digest(t.Digest),
			Size:        t.Size,
			Annotations: t.Annotations,
		}
	}
	return out
}

func descToProto(desc ocispec.Descriptor) *types.Descriptor {
	return &types.Descriptor{
		MediaType:   desc.MediaType,
		Digest:      desc.Digest.String(),
		Size:        desc.Size,
		Annotations: desc.Annotations,
	}
}

func descFromProto(desc *types.Descriptor) (ocispec.Descriptor, error) {
	d, err := digest.Parse(desc.Digest)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("target digest %q: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	return ocispec.Descriptor{
		MediaType:   desc.MediaType,
		Digest:      d,
		Size:        desc.Size,
		Annotations: desc.Annotations,
	}, nil
}

func fromTimestamp(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}
