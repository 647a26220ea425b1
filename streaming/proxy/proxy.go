// Package proxy opens streams on a daemon through the streaming service:
// the client's side of what services/streaming serves.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"

	api "github.com/llitfkitfk/containerd/api/services/streaming/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/streaming"
)

// NewStreamCreator returns a StreamCreator opening streams over conn.
func NewStreamCreator(conn grpc.ClientConnInterface) streaming.StreamCreator {
	return &creator{client: api.NewStreamingClient(conn)}
}

type creator struct {
	client api.StreamingClient
}

// Create opens a stream named id and waits for the daemon to acknowledge
// it, so that the id can be handed to another call at once. The stream
// lives as long as ctx.
func (c *creator) Create(ctx context.Context, id string) (streaming.Stream, error) {
	s, err := c.client.Stream(ctx)
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	init, err := streaming.MarshalAny(&api.StreamInit{Id: id})
	if err != nil {
		return nil, err
	}
	// A Send failing with io.EOF means the daemon has already ended the
	// call; its status, which says why (Unimplemented from a daemon
	// without a streaming service), comes from Recv.
	if err := s.Send(init); err != nil && !errors.Is(err, io.EOF) {
		return nil, fromGRPC(err)
	}
	if _, err := s.Recv(); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("stream %q: daemon ended the stream before acknowledging it", id)
		}
		return nil, fromGRPC(err)
	}
	return &clientStream{s: s}, nil
}

type clientStream struct {
	mu sync.Mutex
	s  api.Streaming_StreamClient
}

func (cs *clientStream) Send(a *anypb.Any) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return fromGRPC(cs.s.Send(a))
}

func (cs *clientStream) Recv() (*anypb.Any, error) {
	a, err := cs.s.Recv()
	return a, fromGRPC(err)
}

// Close ends the client's sending; the daemon's Recv returns io.EOF.
func (cs *clientStream) Close() error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.s.CloseSend()
}

func fromGRPC(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	return errdefs.FromGRPC(err)
}
