package client

import (
	"context"

	"github.com/llitfkitfk/containerd/streaming"
	streamproxy "github.com/llitfkitfk/containerd/streaming/proxy"
	"github.com/llitfkitfk/containerd/transfer"
	"github.com/llitfkitfk/containerd/transfer/proxy"
)

// Transfer asks the daemon's transfer service to move src to dst (the
// transfer types of transfer/registry, transfer/image and
// transfer/archive, marshalled with the streams they need), with progress
// reported through opts. It runs under a lease of its own unless ctx
// carries one, so that what it writes is not collected before it is
// named. A daemon without a transfer service (containerd 1.6) makes it
// fail with errdefs.ErrNotImplemented before anything is read from src.
func (c *Client) Transfer(ctx context.Context, src, dst interface{}, opts ...transfer.Opt) error {
	ctx, done, err := c.WithLease(ctx)
	if err != nil {
		return err
	}
	defer done(ctx)
	return proxy.NewTransferrer(c.conn, c.streamCreator()).Transfer(ctx, src, dst, opts...)
}

// streamCreator opens streams on the daemon through its streaming service.
func (c *Client) streamCreator() streaming.StreamCreator {
	return streamproxy.NewStreamCreator(c.conn)
}
