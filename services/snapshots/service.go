// Package snapshots serves the Snapshots API over the metadata store's
// namespaced snapshotters. Every request names its snapshotter; prepares,
// commits and removals are announced as /snapshot/* events.
package snapshots

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventstypes "github.com/llitfkitfk/containerd/api/events"
	api "github.com/llitfkitfk/containerd/api/services/snapshots/v1"
	"github.com/llitfkitfk/containerd/api/types"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/snapshots"
)

// listBatch is how many infos one List message carries, as containerd.
const listBatch = 100

type service struct {
	api.UnimplementedSnapshotsServer
	// snapshotter returns the snapshotter of a name, or nil.
	snapshotter func(name string) snapshots.Snapshotter
	publisher   events.Publisher
}

func newService(snapshotter func(string) snapshots.Snapshotter, publisher events.Publisher) *service {
	return &service{snapshotter: snapshotter, publisher: publisher}
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
	sn := s.snapshotter(name)
	if sn == nil {
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
	events.Announce(ctx, s.publisher, "/snapshot/prepare", &eventstypes.SnapshotPrepare{
		Key: req.Key, Parent: req.Parent, Snapshotter: req.Snapshotter,
	})
	return &api.PrepareSnapshotResponse{Mounts: mountsToProto(mounts)}, nil
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
	return &api.ViewSnapshotResponse{Mounts: mountsToProto(mounts)}, nil
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
	return &api.MountsResponse{Mounts: mountsToProto(mounts)}, nil
}

// Commit refuses a parent: newer clients send one to rebase the snapshot
// onto it, which these snapshotters cannot do.
func (s *service) Commit(ctx context.Context, req *api.CommitSnapshotRequest) (*emptypb.Empty, error) {
	sn, err := s.get(req.Snapshotter)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if req.Parent != "" {
		return nil, errdefs.ToGRPC(fmt.Errorf("commit %q onto parent %q: rebasing: %w", req.Key, req.Parent, errdefs.ErrNotImplemented))
	}
	if err := sn.Commit(ctx, req.Name, req.Key, labelOpts(req.Labels)...); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	events.Announce(ctx, s.publisher, "/snapshot/commit", &eventstypes.SnapshotCommit{
		Key: req.Key, Name: req.Name, Snapshotter: req.Snapshotter,
	})
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
	events.Announce(ctx, s.publisher, "/snapshot/remove", &eventstypes.SnapshotRemove{
		Key: req.Key, Snapshotter: req.Snapshotter,
	})
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
	return &api.StatSnapshotResponse{Info: infoToProto(info)}, nil
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
	info, err := sn.Update(ctx, infoFromProto(req.Info), req.GetUpdateMask().GetPaths()...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.UpdateSnapshotResponse{Info: infoToProto(info)}, nil
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
		batch = append(batch, infoToProto(info))
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

func mountsToProto(mounts []mount.Mount) []*types.Mount {
	out := make([]*types.Mount, len(mounts))
	for i, m := range mounts {
		out[i] = &types.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options}
	}
	return out
}

// The kinds' values are the API's, so they convert as numbers.

func infoToProto(info snapshots.Info) *api.Info {
	return &api.Info{
		Name:      info.Name,
		Parent:    info.Parent,
		Kind:      api.Kind(info.Kind),
		CreatedAt: timestamppb.New(info.Created),
		UpdatedAt: timestamppb.New(info.Updated),
		Labels:    info.Labels,
	}
}

func infoFromProto(info *api.Info) snapshots.Info {
	return snapshots.Info{
		Name:    info.Name,
		Parent:  info.Parent,
		Kind:    snapshots.Kind(info.Kind),
		Created: fromTimestamp(info.CreatedAt),
		Updated: fromTimestamp(info.UpdatedAt),
		Labels:  info.Labels,
	}
}

func fromTimestamp(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}
