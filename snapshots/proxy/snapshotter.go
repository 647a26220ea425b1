// Package proxy is a snapshots.Snapshotter over the daemon's Snapshots gRPC
// service.
package proxy

import (
	"context"
	"errors"
	"io"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/llitfkitfk/containerd/api/convert"
	snapshotsapi "github.com/llitfkitfk/containerd/api/services/snapshots/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/snapshots"
)

// Snapshotter is a remote snapshotter; it also cleans up (snapshots.Cleaner).
type Snapshotter interface {
	snapshots.Snapshotter
	snapshots.Cleaner
}

type proxySnapshotter struct {
	client      snapshotsapi.SnapshotsClient
	snapshotter string
}

// NewSnapshotter is the daemon's snapshotter named snapshotterName, behind
// client. Errors come back as errdefs kinds.
func NewSnapshotter(client snapshotsapi.SnapshotsClient, snapshotterName string) Snapshotter {
	return &proxySnapshotter{client: client, snapshotter: snapshotterName}
}

func (p *proxySnapshotter) Stat(ctx context.Context, key string) (snapshots.Info, error) {
	resp, err := p.client.Stat(ctx, &snapshotsapi.StatSnapshotRequest{Snapshotter: p.snapshotter, Key: key})
	if err != nil {
		return snapshots.Info{}, errdefs.FromGRPC(err)
	}
	return convert.SnapshotInfoFromProto(resp.Info), nil
}

func (p *proxySnapshotter) Update(ctx context.Context, info snapshots.Info, fieldpaths ...string) (snapshots.Info, error) {
	resp, err := p.client.Update(ctx, &snapshotsapi.UpdateSnapshotRequest{
		Snapshotter: p.snapshotter,
		Info:        convert.SnapshotInfoToProto(info),
		UpdateMask:  &fieldmaskpb.FieldMask{Paths: fieldpaths},
	})
	if err != nil {
		return snapshots.Info{}, errdefs.FromGRPC(err)
	}
	return convert.SnapshotInfoFromProto(resp.Info), nil
}

func (p *proxySnapshotter) Usage(ctx context.Context, key string) (snapshots.Usage, error) {
	resp, err := p.client.Usage(ctx, &snapshotsapi.UsageRequest{Snapshotter: p.snapshotter, Key: key})
	if err != nil {
		return snapshots.Usage{}, errdefs.FromGRPC(err)
	}
	return snapshots.Usage{Size: resp.Size, Inodes: resp.Inodes}, nil
}

func (p *proxySnapshotter) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	resp, err := p.client.Mounts(ctx, &snapshotsapi.MountsRequest{Snapshotter: p.snapshotter, Key: key})
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	return convert.MountsFromProto(resp.Mounts), nil
}

func (p *proxySnapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	labels, err := optLabels(opts)
	if err != nil {
		return nil, err
	}
	resp, err := p.client.Prepare(ctx, &snapshotsapi.PrepareSnapshotRequest{
		Snapshotter: p.snapshotter, Key: key, Parent: parent, Labels: labels,
	})
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	return convert.MountsFromProto(resp.Mounts), nil
}

func (p *proxySnapshotter) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	labels, err := optLabels(opts)
	if err != nil {
		return nil, err
	}
	resp, err := p.client.View(ctx, &snapshotsapi.ViewSnapshotRequest{
		Snapshotter: p.snapshotter, Key: key, Parent: parent, Labels: labels,
	})
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	return convert.MountsFromProto(resp.Mounts), nil
}

// Commit sends the options' parent too, for snapshotters that rebase on
// commit; others ignore it.
func (p *proxySnapshotter) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	var info snapshots.Info
	for _, opt := range opts {
		if err := opt(&info); err != nil {
			return err
		}
	}
	_, err := p.client.Commit(ctx, &snapshotsapi.CommitSnapshotRequest{
		Snapshotter: p.snapshotter, Name: name, Key: key, Labels: info.Labels, Parent: info.Parent,
	})
	return errdefs.FromGRPC(err)
}

func (p *proxySnapshotter) Remove(ctx context.Context, key string) error {
	_, err := p.client.Remove(ctx, &snapshotsapi.RemoveSnapshotRequest{Snapshotter: p.snapshotter, Key: key})
	return errdefs.FromGRPC(err)
}

// Walk calls fn for each snapshot matching any of filters, as the daemon
// streams them in batches. An error of fn ends the walk and is returned
// as is.
func (p *proxySnapshotter) Walk(ctx context.Context, fn snapshots.WalkFunc, filters ...string) error {
	// Cancelling the stream when the walk stops early tells the daemon to
	// stop listing.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := p.client.List(ctx, &snapshotsapi.ListSnapshotsRequest{Snapshotter: p.snapshotter, Filters: filters})
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return errdefs.FromGRPC(err)
		}
		for _, info := range resp.Info {
			if err := fn(ctx, convert.SnapshotInfoFromProto(info)); err != nil {
				return err
			}
		}
	}
}

// Close does nothing: the connection belongs to the client.
func (p *proxySnapshotter) Close() error { return nil }

// Cleanup asks the snapshotter to free what no snapshot uses any more.
func (p *proxySnapshotter) Cleanup(ctx context.Context) error {
	_, err := p.client.Cleanup(ctx, &snapshotsapi.CleanupRequest{Snapshotter: p.snapshotter})
	return errdefs.FromGRPC(err)
}

// optLabels applies snapshot options and keeps what the API carries of
// them: the labels.
func optLabels(opts []snapshots.Opt) (map[string]string, error) {
	var info snapshots.Info
	for _, opt := range opts {
		if err := opt(&info); err != nil {
			return nil, err
		}
	}
	return info.Labels, nil
}
