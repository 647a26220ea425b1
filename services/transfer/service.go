// Package transfer serves containerd.services.transfer.v1.Transfer: it
// turns the request's source and destination into transfer objects
// (transfer/registry, transfer/image, transfer/archive), opening the
// client's streams they name, reports progress on the client's progress
// stream, and hands the pair to the transferrer plugins in turn until one
// knows it.
package transfer

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/llitfkitfk/containerd/api/convert"
	api "github.com/llitfkitfk/containerd/api/services/transfer/v1"
	transfertypes "github.com/llitfkitfk/containerd/api/types/transfer"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/streaming"
	"github.com/llitfkitfk/containerd/transfer"
	"github.com/llitfkitfk/containerd/transfer/plugins"

	// The transfer objects the service understands.
	_ "github.com/llitfkitfk/containerd/transfer/archive"
	_ "github.com/llitfkitfk/containerd/transfer/image"
	_ "github.com/llitfkitfk/containerd/transfer/registry"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.GRPCPlugin,
		ID:       "transfer",
		Requires: []plugin.Type{plugin.TransferPlugin, plugin.StreamingPlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			// In load order, so that the order is the same every start.
			var ts []transfer.Transferrer
			for _, p := range ic.GetAll() {
				if p.Registration.Type != plugin.TransferPlugin || p.Err() != nil {
					continue
				}
				i, _ := p.Instance()
				t, ok := i.(transfer.Transferrer)
				if !ok {
					return nil, fmt.Errorf("plugin %s is a %T, not a transferrer", p.Registration.URI(), i)
				}
				ts = append(ts, t)
			}
			if len(ts) == 0 {
				return nil, fmt.Errorf("no transferrer loaded: %w", plugin.ErrSkipPlugin)
			}
			m, err := ic.GetByID(plugin.StreamingPlugin, "manager")
			if err != nil {
				return nil, err
			}
			return NewService(ts, m.(streaming.StreamManager)), nil
		},
	})
}

type service struct {
	api.UnimplementedTransferServer
	transferrers []transfer.Transferrer
	streams      streaming.StreamGetter
}

// NewService returns the Transfer service trying transferrers in order,
// with the client's streams found in streams.
func NewService(transferrers []transfer.Transferrer, streams streaming.StreamGetter) interface {
	api.TransferServer
	Register(*grpc.Server) error
} {
	return &service{transferrers: transferrers, streams: streams}
}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterTransferServer(server, s)
	return nil
}

// Transfer runs one transfer. The client's streams it uses (progress,
// credentials, archive bytes) are closed when it ends, which ends them for
// the client too: an export's reader then sees the end of the archive.
func (s *service) Transfer(ctx context.Context, req *api.TransferRequest) (*emptypb.Empty, error) {
	streams := &usedStreams{getter: s.streams}
	defer streams.closeAll(ctx)

	var opts []transfer.Opt
	if id := req.GetOptions().GetProgressStream(); id != "" {
		ps, err := streams.Get(ctx, id)
		if err != nil {
			return nil, errdefs.ToGRPCf(err, "progress stream")
		}
		opts = append(opts, transfer.WithProgress(progressSender(ctx, ps)))
	}
	src, err := plugins.Unmarshal(ctx, streams, req.GetSource())
	if err != nil {
		return nil, errdefs.ToGRPCf(err, "source")
	}
	dst, err := plugins.Unmarshal(ctx, streams, req.GetDestination())
	if err != nil {
		return nil, errdefs.ToGRPCf(err, "destination")
	}

	for _, t := range s.transferrers {
		err := t.Transfer(ctx, src, dst, opts...)
		if err == nil {
			return &emptypb.Empty{}, nil
		}
		if !errdefs.IsNotImplemented(err) {
			return nil, errdefs.ToGRPC(err)
		}
		log.G(ctx).WithError(err).Debugf("transferrer %T does not move %v to %v", t, src, dst)
	}
	return nil, errdefs.ToGRPC(fmt.Errorf("no transfer from %s to %s: %w",
		req.GetSource().GetTypeUrl(), req.GetDestination().GetTypeUrl(), errdefs.ErrNotImplemented))
}

// progressSender returns a ProgressFunc sending each report on ps. A report
// that cannot be sent is dropped: progress must not fail a transfer.
func progressSender(ctx context.Context, ps streaming.Stream) transfer.ProgressFunc {
	var mu sync.Mutex
	failed := false
	return func(p transfer.Progress) {
		m := &transfertypes.Progress{
			Event:    p.Event,
			Name:     p.Name,
			Parents:  p.Parents,
			Progress: p.Progress,
			Total:    p.Total,
		}
		if p.Desc != nil {
			m.Desc = convert.DescriptorToProto(*p.Desc)
		}
		a, err := streaming.MarshalAny(m)
		if err == nil {
			err = ps.Send(a)
		}
		if err != nil {
			mu.Lock()
			if !failed {
				failed = true
				log.G(ctx).WithError(err).Debug("progress report not sent; dropping the rest that fail")
			}
			mu.Unlock()
		}
	}
}

// usedStreams is a StreamGetter remembering what it handed out.
type usedStreams struct {
	getter streaming.StreamGetter
	mu     sync.Mutex
	used   []streaming.Stream
}

func (u *usedStreams) Get(ctx context.Context, id string) (streaming.Stream, error) {
	st, err := u.getter.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	u.used = append(u.used, st)
	u.mu.Unlock()
	return st, nil
}

func (u *usedStreams) closeAll(ctx context.Context) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, st := range u.used {
		if err := st.Close(); err != nil {
			log.G(ctx).WithError(err).Debug("closing a transfer's stream")
		}
	}
	u.used = nil
}
