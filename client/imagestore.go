package client

import (
	"context"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/llitfkitfk/containerd/api/convert"
	imagesapi "github.com/llitfkitfk/containerd/api/services/images/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
)

type remoteImages struct {
	client imagesapi.ImagesClient
}

// NewImageStoreFromClient is an images.Store over the daemon's Images
// service behind client. Errors come back as errdefs kinds.
func NewImageStoreFromClient(client imagesapi.ImagesClient) images.Store {
	return &remoteImages{client: client}
}

func (s *remoteImages) Get(ctx context.Context, name string) (images.Image, error) {
	resp, err := s.client.Get(ctx, &imagesapi.GetImageRequest{Name: name})
	if err != nil {
		return images.Image{}, errdefs.FromGRPC(err)
	}
	return convert.ImageFromProto(resp.Image), nil
}

func (s *remoteImages) List(ctx context.Context, filters ...string) ([]images.Image, error) {
	resp, err := s.client.List(ctx, &imagesapi.ListImagesRequest{Filters: filters})
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	out := make([]images.Image, len(resp.Images))
	for i, image := range resp.Images {
		out[i] = convert.ImageFromProto(image)
	}
	return out, nil
}

func (s *remoteImages) Create(ctx context.Context, image images.Image) (images.Image, error) {
	resp, err := s.client.Create(ctx, &imagesapi.CreateImageRequest{Image: convert.ImageToProto(image)})
	if err != nil {
		return images.Image{}, errdefs.FromGRPC(err)
	}
	return convert.ImageFromProto(resp.Image), nil
}

// Update changes the fields named by fieldpaths ("labels", "labels.<key>",
// "target"); none changes every field the image carries.
func (s *remoteImages) Update(ctx context.Context, image images.Image, fieldpaths ...string) (images.Image, error) {
	req := &imagesapi.UpdateImageRequest{Image: convert.ImageToProto(image)}
	if len(fieldpaths) > 0 {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: fieldpaths}
	}
	resp, err := s.client.Update(ctx, req)
	if err != nil {
		return images.Image{}, errdefs.FromGRPC(err)
	}
	return convert.ImageFromProto(resp.Image), nil
}

func (s *remoteImages) Delete(ctx context.Context, name string, opts ...images.DeleteOpt) error {
	var do images.DeleteOptions
	for _, opt := range opts {
		if err := opt(ctx, &do); err != nil {
			return err
		}
	}
	req := &imagesapi.DeleteImageRequest{Name: name, Sync: do.Synchronous}
	if do.Target != nil {
		req.Target = convert.DescriptorToProto(*do.Target)
	}
	_, err := s.client.Delete(ctx, req)
	return errdefs.FromGRPC(err)
}
