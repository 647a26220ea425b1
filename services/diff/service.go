package diff

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	"github.com/llitfkitfk/containerd/api/convert"
	api "github.com/llitfkitfk/containerd/api/services/diff/v1"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.GRPCPlugin,
		ID:       "diff",
		Requires: []plugin.Type{plugin.ServicePlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			l, err := ic.GetByID(plugin.ServicePlugin, services.DiffService)
			if err != nil {
				return nil, err
			}
			return &service{local: l.(Differ)}, nil
		},
	})
}

// service serves the Diff API over the local service.
type service struct {
	api.UnimplementedDiffServer
	local Differ
}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterDiffServer(server, s)
	return nil
}

func (s *service) Apply(ctx context.Context, req *api.ApplyRequest) (*api.ApplyResponse, error) {
	if req.GetDiff() == nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("apply: no layer descriptor: %w", errdefs.ErrInvalidArgument))
	}
	var opts []diff.ApplyOpt
	if len(req.GetPayloads()) > 0 {
		opts = append(opts, diff.WithPayloads(req.GetPayloads()))
	}
	if req.GetSyncFs() {
		opts = append(opts, diff.WithSyncFs(true))
	}
	applied, err := s.local.Apply(ctx, convert.DescriptorFromProto(req.GetDiff()), convert.MountsFromProto(req.GetMounts()), opts...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.ApplyResponse{Applied: convert.DescriptorToProto(applied)}, nil
}

func (s *service) Diff(ctx context.Context, req *api.DiffRequest) (*api.DiffResponse, error) {
	var opts []diff.Opt
	if req.GetMediaType() != "" {
		opts = append(opts, diff.WithMediaType(req.GetMediaType()))
	}
	if req.GetRef() != "" {
		opts = append(opts, diff.WithReference(req.GetRef()))
	}
	if req.GetLabels() != nil {
		opts = append(opts, diff.WithLabels(req.GetLabels()))
	}
	if req.GetSourceDateEpoch() != nil {
		tm := convert.TimestampFromProto(req.GetSourceDateEpoch())
		opts = append(opts, diff.WithSourceDateEpoch(&tm))
	}
	desc, err := s.local.Compare(ctx, convert.MountsFromProto(req.GetLeft()), convert.MountsFromProto(req.GetRight()), opts...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.DiffResponse{Diff: convert.DescriptorToProto(desc)}, nil
}
