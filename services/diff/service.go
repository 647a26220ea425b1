// Package diff serves the Diff API: applying layers onto mounts, as
// unpacking an image does, and making layers from the difference between
// two mount sets. The work is the differ plugins'; the service picks one.
package diff

import (
	"context"
	"fmt"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"

	api "github.com/llitfkitfk/containerd/api/services/diff/v1"
	"github.com/llitfkitfk/containerd/api/types"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/mount"
)

// differ is what a differ plugin's instance must be.
type differ interface {
	diff.Comparer
	diff.Applier
}

type service struct {
	api.UnimplementedDiffServer
	// differs are tried in order; NotImplemented passes a call on.
	differs []differ
}

func newService(differs []differ) *service {
	return &service{differs: differs}
}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterDiffServer(server, s)
	return nil
}

// Apply unpacks the layer req.Diff names onto req.Mounts and returns the
// descriptor of the uncompressed layer, whose digest is its diff ID.
func (s *service) Apply(ctx context.Context, req *api.ApplyRequest) (*api.ApplyResponse, error) {
	desc, err := descFromProto(req.Diff)
	if err != nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("apply: %w", err))
	}
	mounts := mountsFromProto(req.Mounts)
	var opts []diff.ApplyOpt
	if len(req.Payloads) > 0 {
		opts = append(opts, diff.WithPayloads(req.Payloads))
	}
	if req.SyncFs {
		opts = append(opts, diff.WithSyncFs(true))
	}

	var applied ocispec.Descriptor
	for _, d := range s.differs {
		applied, err = d.Apply(ctx, desc, mounts, opts...)
		if !errdefs.IsNotImplemented(err) {
			break
		}
	}
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.ApplyResponse{Applied: descToProto(applied)}, nil
}

// Diff writes the difference from req.Left to req.Right into the content
// store as a layer and returns its descriptor.
func (s *service) Diff(ctx context.Context, req *api.DiffRequest) (*api.DiffResponse, error) {
	var opts []diff.Opt
	if req.MediaType != "" {
		opts = append(opts, diff.WithMediaType(req.MediaType))
	}
	if req.Ref != "" {
		opts = append(opts, diff.WithReference(req.Ref))
	}
	if req.Labels != nil {
		opts = append(opts, diff.WithLabels(req.Labels))
	}
	if req.SourceDateEpoch != nil {
		tm := req.SourceDateEpoch.AsTime()
		opts = append(opts, diff.WithSourceDateEpoch(&tm))
	}
	left, right := mountsFromProto(req.Left), mountsFromProto(req.Right)

	var (
		desc ocispec.Descriptor
		err  error
	)
	for _, d := range s.differs {
		desc, err = d.Compare(ctx, left, right, opts...)
		if !errdefs.IsNotImplemented(err) {
			break
		}
	}
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.DiffResponse{Diff: descToProto(desc)}, nil
}

func mountsFromProto(ms []*types.Mount) []mount.Mount {
	out := make([]mount.Mount, len(ms))
	for i, m := range ms {
		out[i] = mount.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options}
	}
	return out
}

// descFromProto converts the layer to apply, which must have a valid
// digest: it is how the content store finds the blob.
func descFromProto(d *types.Descriptor) (ocispec.Descriptor, error) {
	if d == nil {
		return ocispec.Descriptor{}, fmt.Errorf("no layer descriptor: %w", errdefs.ErrInvalidArgument)
	}
	dgst, err := digest.Parse(d.Digest)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("layer digest %q: %v: %w", d.Digest, err, errdefs.ErrInvalidArgument)
	}
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: dgst, Size: d.Size, Annotations: d.Annotations}, nil
}

func descToProto(d ocispec.Descriptor) *types.Descriptor {
	return &types.Descriptor{MediaType: d.MediaType, Digest: d.Digest.String(), Size: d.Size, Annotations: d.Annotations}
}
