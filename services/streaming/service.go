// Package streaming serves containerd.services.streaming.v1.Streaming: a
// client opens a stream, names it with a first StreamInit message, and
// once the daemon acknowledges with an empty message the stream is
// available to other calls of the same namespace (a transfer's progress,
// credentials or archive bytes) until either side ends it.
//
// It also registers the stream manager plugin the transfer service reads
// the streams from.
package streaming

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	api "github.com/llitfkitfk/containerd/api/services/streaming/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/streaming"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type: plugin.StreamingPlugin,
		ID:   "manager",
		InitFn: func(*plugin.InitContext) (interface{}, error) {
			return streaming.NewManager(), nil
		},
	})
	plugin.Register(&plugin.Registration{
		Type:     plugin.GRPCPlugin,
		ID:       "streaming",
		Requires: []plugin.Type{plugin.StreamingPlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			m, err := ic.GetByID(plugin.StreamingPlugin, "manager")
			if err != nil {
				return nil, err
			}
			return NewService(m.(streaming.StreamManager)), nil
		},
	})
}

// ack is the message that tells the client its stream is registered.
var ack = func() *anypb.Any {
	a, err := streaming.MarshalAny(&emptypb.Empty{})
	if err != nil {
		panic(err)
	}
	return a
}()

type service struct {
	api.UnimplementedStreamingServer
	manager streaming.StreamManager
}

// NewService returns the Streaming service registering streams in
// manager.
func NewService(manager streaming.StreamManager) interface {
	api.StreamingServer
	Register(*grpc.Server) error
} {
	return &service{manager: manager}
}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterStreamingServer(server, s)
	return nil
}

// Stream registers the client's stream and then holds the call open: the
// stream lives until the daemon closes it (the call then ends with OK) or
// the client goes away.
func (s *service) Stream(srv api.Streaming_StreamServer) error {
	ctx := srv.Context()
	first, err := srv.Recv()
	if err != nil {
		return err
	}
	var init api.StreamInit
	if err := first.UnmarshalTo(&init); err != nil {
		return errdefs.ToGRPC(fmt.Errorf("first message must be a %s, got %q: %v: %w",
			(&init).ProtoReflect().Descriptor().FullName(), first.GetTypeUrl(), err, errdefs.ErrInvalidArgument))
	}

	ss := &serverStream{srv: srv, closed: make(chan struct{}), finished: make(chan struct{})}
	// Whatever still holds the stream must not use the call once it is
	// over; gRPC forbids it.
	defer ss.finish()
	if err := s.manager.Register(ctx, init.GetId(), ss); err != nil {
		return errdefs.ToGRPC(err)
	}
	log.G(ctx).WithField("stream", init.GetId()).Debug("stream registered")
	if err := ss.Send(ack); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-ss.closed:
	}
	return nil
}

// serverStream is the daemon's end of a client's stream.
type serverStream struct {
	srv      api.Streaming_StreamServer
	sendMu   sync.Mutex
	once     sync.Once
	closed   chan struct{} // Close was called
	finished chan struct{} // the call is over
}

func (ss *serverStream) Send(a *anypb.Any) error {
	ss.sendMu.Lock()
	defer ss.sendMu.Unlock()
	select {
	case <-ss.finished:
		return fmt.Errorf("send on stream: %w", streaming.ErrClosed)
	default:
	}
	return fromGRPC(ss.srv.Send(a))
}

func (ss *serverStream) Recv() (*anypb.Any, error) {
	select {
	case <-ss.finished:
		return nil, fmt.Errorf("receive on stream: %w", streaming.ErrClosed)
	default:
	}
	a, err := ss.srv.Recv()
	if err != nil {
		return nil, fromGRPC(err)
	}
	return a, nil
}

// fromGRPC turns a call's error into an errdefs one, keeping io.EOF (the
// client finished sending) as it is.
func fromGRPC(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	return errdefs.FromGRPC(err)
}

// Close ends the call; the client's Recv then returns io.EOF after what
// was sent.
func (ss *serverStream) Close() error {
	ss.once.Do(func() { close(ss.closed) })
	return nil
}

// Done lets the manager forget the stream when the call ends.
func (ss *serverStream) Done() <-chan struct{} { return ss.finished }

func (ss *serverStream) finish() {
	ss.sendMu.Lock()
	close(ss.finished)
	ss.sendMu.Unlock()
}
