package client

import (
	"context"

	"github.com/llitfkitfk/containerd/transfer"
)

// Transfer asks the daemon's transfer service to move src to dst (the
// transfer types of transfer/registry, transfer/image and
// transfer/archive, marshalled with the streams they need), with progress
// reported through opts.
func (c *Client) Transfer(ctx context.Context, src, dst interface{}, opts ...transfer.Opt) error {
	panic("client.Transfer: not yet implemented")
}
