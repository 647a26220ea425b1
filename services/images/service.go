package images

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
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

// List answers, where the store keeps its images' encodings (the
// metadata store does, see metadata.imageStore.ListEncoded), with those:
// each image is converted and marshalled once per version, not on every
// list. The encodings go in the response as unknown fields, which proto
// marshals as they are: the bytes on the wire are those of a response
// whose Images field holds the images, so every client reads it as such.
// Only a caller of this method in-process, without a marshal between,
// would see Images empty; gRPC always marshals.
func (s *service) List(ctx context.Context, req *api.ListImagesRequest) (*api.ListImagesResponse, error) {
	if el, ok := s.local.(encodedLister); ok {
		parts, err := el.ListEncoded(ctx, encodeImage, req.GetFilters()...)
		if err != nil && !errors.Is(err, errdefs.ErrNotImplemented) {
			return nil, errdefs.ToGRPC(err)
		}
		if err == nil && !slices.ContainsFunc(parts, func(b []byte) bool { return b == nil }) {
			resp := &api.ListImagesResponse{}
			if len(parts) == 1 {
				resp.ProtoReflect().SetUnknown(parts[0])
			} else {
				resp.ProtoReflect().SetUnknown(slices.Concat(parts...))
			}
			return resp, nil
		}
	}
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

// encodedLister is a store that keeps the encodings of its images.
type encodedLister interface {
	ListEncoded(ctx context.Context, enc func(*images.Image) []byte, fs ...string) ([][]byte, error)
}

// imagesField is the field of ListImagesResponse that holds the images.
var imagesField = (&api.ListImagesResponse{}).ProtoReflect().Descriptor().Fields().ByName("images").Number()

// encodeImage is image as one element of ListImagesResponse's images
// field: the field's tag, then the Image message, length-prefixed. It is
// nil for an image proto cannot marshal (a label that is not UTF-8, say),
// which List then answers the plain way, failing as it always has.
func encodeImage(image *images.Image) []byte {
	msg, err := proto.Marshal(convert.ImageToProto(*image))
	if err != nil {
		return nil
	}
	b := protowire.AppendTag(make([]byte, 0, len(msg)+8), imagesField, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}
