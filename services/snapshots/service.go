package snapshots

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/llitfkitfk/containerd/api/convert"
	api "github.com/llitfkitfk/containerd/api/services/snapshots/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
	"github.com/llitfkitfk/containerd/snapshots"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.GRPCPlugin,
		ID:       "snapshots",
		Requires: []plugin.Type{plugin.ServicePlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			l, err := ic.GetByID(plugin.ServicePlugin, services.SnapshotsService)
			if err != nil {
				return nil, err
			}
			return &service{snapshotters: l.(map[string]snapshots.Snapshotter)}, nil
		},
	})
}

// listBatch is how many infos one List message carries, as containerd.
const listBatch = 100

// service serves the Snapshots API over the local service. Every request
// names its snapshotter.
type service struct {
	api.UnimplementedSnapshotsServer
	snapshotters map[string]snapshots.Snapshotter
}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterSnapshotsServer(server, s)
	return nil
}

// get returns the named snapshotter. A missing or unknown name is
// InvalidArgument, as containerd answers it.
func (s *service) get(name string) (snapshots.Snapshotter, error) {
	if name == "" {
		return nil, fmt.Errorf("snapshotter argument missing: %w", errdefs.ErrInvalidArgument)
	}
	sn, ok := s.snapshotters[name]
	if !ok {
		return nil, fmt.Errorf("snapshotter not loaded: %s: %w", name, errdefs.ErrInvalidArgument)
	}
	return sn, nil
}

func labelOpts(labels map[string]string) []snapshots.Opt {
	if len(labels) == 0 {
		return nil
	}
	return []snapshots.Opt{snapshots.WithLabels(labels)}
}

func (s *service) Prepare(ctx context.Context, req *api.PrepareSnapshotRequest) (*api.PrepareSnapshotResponse, error) {
	sn, err := s.get(req.Snapshotter)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	mounts, err := sn.Prepare(ctx, req.Key, req.Parent, labelOpts(req.Labels)...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.PrepareSnapshotResponse{Mounts: convert.MountsToProto(mounts)}, nil
}

func (s *service) View(ctx context.Context, req *api.ViewSnapshotRequest) (*api.ViewSnapshotResponse, error) {
	sn, err := s.get(req.Snapshotter)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	mounts, err := sn.View(ctx, req.Key, req.Parent, labelOpts(req.Labels)...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.ViewSnapshotResponse{Mounts: convert.MountsToProto(mounts)}, nil
}

func (s *service) Mounts(ctx context.Context, req *api.MountsRequest) (*api.MountsResponse, error) {
	sn, err := s.get(req.Snapshotter)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	mounts, err := sn.Mounts(ctx, req.Key)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.MountsResponse{Mounts: convert.MountsToProto(mounts)}, nil
}

// Commit passes a parent on, as containerd 2.x does: the snapshot's own
// parent changes nothing, and a snapshot prepared without one is rebased
// onto it, which the metadata layer allows only there (clients rebase only
// on snapshotters that advertise the "rebase" capability).
func (s *service) Commit(ctx context.Context, req *api.CommitSnapshotRequest) (*emptypb.Empty, error) {
	sn, err := s.get(req.Snapshotter)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	opts := labelOpts(req.Labels)
	if req.Parent != "" {
		opts = append(opts, func(info *snapshots.Info) error {
			info.Parent = req.Parent
			return nil
		})
	}
	if err := sn.Commit(ctx, req.Name, req.Key, opts...); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) Remove(ctx context.Context, req *api.RemoveSnapshotRequest) (*emptypb.Empty, error) {
	sn, err := s.get(req.Snapshotter)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if err := sn.Remove(ctx, req.Key); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) Stat(ctx context.Context, req *api.StatSnapshotRequest) (*api.StatSnapshotResponse, error) {
	sn, err := s.get(req.Snapshotter)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	info, err := sn.Stat(ctx, req.Key)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.StatSnapshotResponse{Info: convert.SnapshotInfoToProto(info)}, nil
}

// Update changes labels; the field mask goes to the snapshotter, which
// treats no paths as "replace all labels".
func (s *service) Update(ctx context.Context, req *api.UpdateSnapshotRequest) (*api.UpdateSnapshotResponse, error) {
	sn, err := s.get(req.Snapshotter)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if req.Info == nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("info is required: %w", errdefs.ErrInvalidArgument))
	}
	info, err := sn.Update(ctx, convert.SnapshotInfoFromProto(req.Info), req.GetUpdateMask().GetPaths()...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.UpdateSnapshotResponse{Info: convert.SnapshotInfoToProto(info)}, nil
}

// List streams the matching snapshots, listBatch to a message.
func (s *service) List(req *api.ListSnapshotsRequest, stream api.Snapshots_ListServer) error {
	sn, err := s.get(req.Snapshotter)
	if err != nil {
		return errdefs.ToGRPC(err)
	}
	batch := make([]*api.Info, 0, listBatch)
	send := func() error {
		err := stream.Send(&api.ListSnapshotsResponse{Info: batch})
		batch = batch[:0]
		return err
	}
	err = sn.Walk(stream.Context(), func(_ context.Context, info snapshots.Info) error {
		batch = append(batch, convert.SnapshotInfoToProto(info))
		if len(batch) == listBatch {
			return send()
		}
		return nil
	}, req.Filters...)
	if err == nil && len(batch) > 0 {
		err = send()
	}
	return errdefs.ToGRPC(err)
}

func (s *service) Usage(ctx context.Context, req *api.UsageRequest) (*api.UsageResponse, error) {
	sn, err := s.get(req.Snapshotter)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	u, err := sn.Usage(ctx, req.Key)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.UsageResponse{Size: u.Size, Inodes: u.Inodes}, nil
}

func (s *service) Cleanup(ctx context.Context, req *api.CleanupRequest) (*emptypb.Empty, error) {
	sn, err := s.get(req.Snapshotter)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	c, ok := sn.(snapshots.Cleaner)
	if !ok {
		return nil, errdefs.ToGRPC(fmt.Errorf("snapshotter %s does not clean up: %w", req.Snapshotter, errdefs.ErrNotImplemented))
	}
	if err := c.Cleanup(ctx); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}
