package images

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/llitfkitfk/containerd/api/convert"
	api "github.com/llitfkitfk/containerd/api/services/images/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.GRPCPlugin,
		ID:       "images",
		Requires: []plugin.Type{plugin.ServicePlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			l, err := ic.GetByID(plugin.ServicePlugin, services.ImagesService)
			if err != nil {
				return nil, err
			}
			return &service{local: l.(images.Store)}, nil
		},
	})
}

// service serves the Images API over the local service.
type service struct {
	api.UnimplementedImagesServer
	local images.Store
}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterImagesServer(server, s)
	return nil
}

func (s *service) Get(ctx context.Context, req *api.GetImageRequest) (*api.GetImageResponse, error) {
	image, err := s.local.Get(ctx, req.GetName())
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.GetImageResponse{Image: convert.ImageToProto(image)}, nil
}

func (s *service) List(ctx context.Context, req *api.ListImagesRequest) (*api.ListImagesResponse, error) {
	list, err := s.local.List(ctx, req.GetFilters()...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	resp := &api.ListImagesResponse{Images: make([]*api.Image, len(list))}
	for i, image := range list {
		resp.Images[i] = convert.ImageToProto(image)
	}
	return resp, nil
}

func (s *service) Create(ctx context.Context, req *api.CreateImageRequest) (*api.CreateImageResponse, error) {
	if req.GetImage() == nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("image is required: %w", errdefs.ErrInvalidArgument))
	}
	created, err := s.local.Create(ctx, convert.ImageFromProto(req.GetImage()))
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.CreateImageResponse{Image: convert.ImageToProto(created)}, nil
}

// Update changes the fields the mask names ("labels", "labels.<key>",
// "target", "annotations"...); with none the store replaces labels and
// target.
func (s *service) Update(ctx context.Context, req *api.UpdateImageRequest) (*api.UpdateImageResponse, error) {
	if req.GetImage() == nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("image is required: %w", errdefs.ErrInvalidArgument))
	}
	updated, err := s.local.Update(ctx, convert.ImageFromProto(req.GetImage()), req.GetUpdateMask().GetPaths()...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.UpdateImageResponse{Image: convert.ImageToProto(updated)}, nil
}

// Delete removes an image; with target set only if it still points there,
// with sync only once garbage collection has removed what it alone held.
func (s *service) Delete(ctx context.Context, req *api.DeleteImageRequest) (*emptypb.Empty, error) {
	var opts []images.DeleteOpt
	if req.GetTarget() != nil {
		target := convert.DescriptorFromProto(req.GetTarget())
		opts = append(opts, images.DeleteTarget(&target))
	}
	if req.GetSync() {
		opts = append(opts, images.SynchronousDelete())
	}
	if err := s.local.Delete(ctx, req.GetName(), opts...); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}
