// Package proxy is the client's side of the transfer service: a
// transfer.Transferrer that sends the transfer to a daemon, opening the
// streams its objects and its progress need through a StreamCreator.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/api/convert"
	api "github.com/llitfkitfk/containerd/api/services/transfer/v1"
	transfertypes "github.com/llitfkitfk/containerd/api/types/transfer"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/streaming"
	"github.com/llitfkitfk/containerd/transfer"
	tstreaming "github.com/llitfkitfk/containerd/transfer/streaming"
)

// StreamMarshaler is a transfer object that writes itself for the wire,
// opening the streams it needs (the transfer/registry, transfer/image
// and transfer/archive types).
type StreamMarshaler interface {
	MarshalAny(context.Context, streaming.StreamCreator) (*anypb.Any, error)
}

// Finisher is a transfer object whose client-side work goes on after the
// call returns (an export copying the archive to its writer); Transfer
// waits for it. transferErr is the call's result.
type Finisher interface {
	Finish(ctx context.Context, transferErr error) error
}

// ProgressDrain bounds how long Transfer waits, once the call has
// returned, for the rest of the progress reports: the daemon ends the
// progress stream when the transfer ends, so this is only reached when it
// does not.
var ProgressDrain = 2 * time.Second

// NewTransferrer returns a Transferrer calling the transfer service on
// conn, with streams opened through sc.
func NewTransferrer(conn grpc.ClientConnInterface, sc streaming.StreamCreator) transfer.Transferrer {
	return &transferrer{client: api.NewTransferClient(conn), streams: sc}
}

type transferrer struct {
	client  api.TransferClient
	streams streaming.StreamCreator
}

// Transfer sends src and dst to the daemon and waits for the transfer.
// An error the daemon answers is returned as an errdefs error;
// errdefs.ErrNotImplemented when the daemon has no transfer (or no
// streaming) service, as containerd 1.6.
func (p *transferrer) Transfer(ctx context.Context, src, dst interface{}, opts ...transfer.Opt) (retErr error) {
	var cfg transfer.Config
	for _, o := range opts {
		o(&cfg)
	}
	// The streams live as long as this call; ending them stops whatever
	// still serves them (credentials, an import's sender).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	req := &api.TransferRequest{Options: &api.TransferOptions{}}
	var progressDone chan struct{}
	if cfg.Progress != nil {
		id := tstreaming.GenerateID("progress")
		s, err := p.streams.Create(ctx, id)
		if err != nil {
			return fmt.Errorf("open progress stream: %w", err)
		}
		req.Options.ProgressStream = id
		progressDone = make(chan struct{})
		go func() {
			defer close(progressDone)
			receiveProgress(ctx, s, cfg.Progress)
		}()
	}

	var err error
	if req.Source, err = p.marshal(ctx, src); err != nil {
		return fmt.Errorf("transfer source: %w", err)
	}
	if req.Destination, err = p.marshal(ctx, dst); err != nil {
		return fmt.Errorf("transfer destination: %w", err)
	}
	_, err = p.client.Transfer(ctx, req)
	err = errdefs.FromGRPC(err)

	for _, obj := range []interface{}{src, dst} {
		if f, ok := obj.(Finisher); ok {
			if ferr := f.Finish(ctx, err); err == nil {
				err = ferr
			}
		}
	}
	if progressDone != nil {
		select {
		case <-progressDone:
		case <-time.After(ProgressDrain):
		}
	}
	return err
}

func (p *transferrer) marshal(ctx context.Context, obj interface{}) (*anypb.Any, error) {
	switch m := obj.(type) {
	case StreamMarshaler:
		return m.MarshalAny(ctx, p.streams)
	case proto.Message:
		return streaming.MarshalAny(m)
	default:
		return nil, fmt.Errorf("%T cannot be sent to the daemon: %w", obj, errdefs.ErrNotImplemented)
	}
}

// receiveProgress hands each report on s to f, in order, until the daemon
// ends the stream.
func receiveProgress(ctx context.Context, s streaming.Stream, f transfer.ProgressFunc) {
	for {
		a, err := s.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				log.G(ctx).WithError(err).Debug("progress stream ended")
			}
			return
		}
		var m transfertypes.Progress
		if !a.MessageIs(&m) {
			log.G(ctx).WithField("type", a.GetTypeUrl()).Debug("progress stream: ignoring message")
			continue
		}
		if err := a.UnmarshalTo(&m); err != nil {
			log.G(ctx).WithError(err).Warn("progress stream: bad report")
			continue
		}
		p := transfer.Progress{
			Event:    m.GetEvent(),
			Name:     m.GetName(),
			Parents:  m.GetParents(),
			Progress: m.GetProgress(),
			Total:    m.GetTotal(),
		}
		if m.GetDesc() != nil {
			d := convert.DescriptorFromProto(m.GetDesc())
			p.Desc = &d
		}
		f(p)
	}
}
