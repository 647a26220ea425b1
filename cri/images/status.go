package images

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
)

// ImageStatus describes a present image; an absent one is an empty
// answer, not an error (the CRI's rule: kubelet asks to learn whether to
// pull).
func (s *Service) ImageStatus(ctx context.Context, r *runtime.ImageStatusRequest) (*runtime.ImageStatusResponse, error) {
	ref := r.GetImage().GetImage()
	img, err := s.LocalResolve(ctx, ref)
	if errdefs.IsNotFound(err) {
		return &runtime.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("can not resolve %q locally: %w", ref, err))
	}
	resp := &runtime.ImageStatusResponse{Image: toCRIImage(img)}
	if r.GetVerbose() {
		resp.Info = verboseInfo(img)
	}
	return resp, nil
}

// verboseInfo is containerd's verbose image status: the chain id and the
// image config as JSON under "info".
func verboseInfo(img Image) map[string]string {
	b, err := json.Marshal(struct {
		ChainID   string        `json:"chainID"`
		ImageSpec ocispec.Image `json:"imageSpec"`
	}{img.ChainID.String(), img.Spec})
	if err != nil {
		return map[string]string{"info": err.Error()}
	}
	return map[string]string{"info": string(b)}
}

func toCRIImage(img Image) *runtime.Image {
	tags, digests := splitReferences(img.References)
	out := &runtime.Image{
		Id:          img.ID,
		RepoTags:    tags,
		RepoDigests: digests,
		Size:        uint64(img.Size),
		Pinned:      img.Pinned,
	}
	// The config's User is "user[:group]": a number is the uid, a name
	// is reported as the username (kubelet's runAsNonRoot checks both).
	if user, _, _ := strings.Cut(img.Spec.Config.User, ":"); user != "" {
		if uid, err := strconv.ParseInt(user, 10, 64); err == nil {
			out.Uid = &runtime.Int64Value{Value: uid}
		} else {
			out.Username = user
		}
	}
	return out
}

// ListImages lists the present images; a filter naming an image (by any
// name, id or id prefix) keeps that one only.
func (s *Service) ListImages(ctx context.Context, r *runtime.ListImagesRequest) (*runtime.ListImagesResponse, error) {
	if ref := r.GetFilter().GetImage().GetImage(); ref != "" {
		img, err := s.LocalResolve(ctx, ref)
		if errdefs.IsNotFound(err) {
			return &runtime.ListImagesResponse{}, nil
		}
		if err != nil {
			return nil, errdefs.ToGRPC(err)
		}
		return &runtime.ListImagesResponse{Images: []*runtime.Image{toCRIImage(img)}}, nil
	}
	imgs := s.cache.list()
	out := make([]*runtime.Image, len(imgs))
	for i, img := range imgs {
		out[i] = toCRIImage(img)
	}
	return &runtime.ListImagesResponse{Images: out}, nil
}

// RemoveImage removes an image, named by any of its names or its id:
// every record naming it goes, the last one waiting for the garbage
// collector to take its content and snapshots. An absent image is not an
// error.
func (s *Service) RemoveImage(ctx context.Context, r *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error) {
	if err := s.Remove(ctx, r.GetImage().GetImage()); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &runtime.RemoveImageResponse{}, nil
}

// Remove is RemoveImage's work.
func (s *Service) Remove(ctx context.Context, ref string) error {
	ctx = withNamespace(ctx)
	img, err := s.LocalResolve(ctx, ref)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("can not resolve %q locally: %w", ref, err)
	}
	defer s.fsChanged()
	for i, name := range img.References {
		var opts []images.DeleteOpt
		if i == len(img.References)-1 {
			opts = append(opts, images.SynchronousDelete())
		}
		if err := s.deps.Images.Delete(ctx, name, opts...); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("failed to delete image reference %q for %q: %w", name, img.ID, err)
		}
		if err := s.Update(ctx, name); err != nil {
			return err
		}
	}
	return nil
}
