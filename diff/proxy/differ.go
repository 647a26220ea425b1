// Package proxy is a diff.Applier and diff.Comparer over the daemon's Diff
// gRPC service.
package proxy

import (
	"context"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/llitfkitfk/containerd/api/convert"
	diffapi "github.com/llitfkitfk/containerd/api/services/diff/v1"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/mount"
)

// Differ applies and computes layer diffs in the daemon.
type Differ interface {
	diff.Applier
	diff.Comparer
}

type differ struct {
	client diffapi.DiffClient
}

// NewDiffApplier is the daemon's default differ behind client. Errors come
// back as errdefs kinds.
func NewDiffApplier(client diffapi.DiffClient) Differ {
	return &differ{client: client}
}

// Apply applies the layer desc to mounts in the daemon. Of the options,
// what the API carries goes along: the processors' payloads and SyncFs.
// Progress and DiffID cannot cross it: the daemon reads the layer and
// checks its digest itself.
func (d *differ) Apply(ctx context.Context, desc ocispec.Descriptor, mounts []mount.Mount, opts ...diff.ApplyOpt) (ocispec.Descriptor, error) {
	var config diff.ApplyConfig
	for _, opt := range opts {
		if err := opt(ctx, desc, &config); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	resp, err := d.client.Apply(ctx, &diffapi.ApplyRequest{
		Diff:     convert.DescriptorToProto(desc),
		Mounts:   convert.MountsToProto(mounts),
		Payloads: config.ProcessorPayloads,
		SyncFs:   config.SyncFs,
	})
	if err != nil {
		return ocispec.Descriptor{}, errdefs.FromGRPC(err)
	}
	return convert.DescriptorFromProto(resp.Applied), nil
}

// Compare computes the diff between lower and upper in the daemon, which
// writes it to its content store. A Compressor cannot cross the API: the
// media type chooses the compression.
func (d *differ) Compare(ctx context.Context, lower, upper []mount.Mount, opts ...diff.Opt) (ocispec.Descriptor, error) {
	var config diff.Config
	for _, opt := range opts {
		if err := opt(&config); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	if config.Compressor != nil {
		return ocispec.Descriptor{}, fmt.Errorf("compressor over the diff service: %w", errdefs.ErrNotImplemented)
	}
	req := &diffapi.DiffRequest{
		Left:      convert.MountsToProto(lower),
		Right:     convert.MountsToProto(upper),
		MediaType: config.MediaType,
		Ref:       config.Reference,
		Labels:    config.Labels,
	}
	if config.SourceDateEpoch != nil {
		req.SourceDateEpoch = timestamppb.New(*config.SourceDateEpoch)
	}
	resp, err := d.client.Diff(ctx, req)
	if err != nil {
		return ocispec.Descriptor{}, errdefs.FromGRPC(err)
	}
	return convert.DescriptorFromProto(resp.Diff), nil
}
