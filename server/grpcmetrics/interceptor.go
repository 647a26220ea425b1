package grpcmetrics

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Tag derives a call's context from the one gRPC gave it, knowing the
// method's entry (the server tags the log with the entry's Module).
type Tag func(context.Context, *Method) context.Context

// UnaryServerInterceptor counts unary calls as go-grpc-prometheus does: a
// call receives one message, and sends one when it succeeds. The handler
// runs with the context tag returns.
func (m *Metrics) UnaryServerInterceptor(tag Tag) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req interface{}, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (interface{}, error) {
		e := m.Lookup(info.FullMethod, false, false)
		var start time.Time
		if e.Timed() {
			start = time.Now()
		}
		e.Started()
		e.Received()
		resp, err := handler(tag(ctx, e), req)
		e.Handled(status.Code(err), start)
		if err == nil {
			e.Sent()
		}
		return resp, err
	}
}

// StreamServerInterceptor counts streaming calls and every message they
// send and receive successfully. The handler's stream has the context tag
// returns.
func (m *Metrics) StreamServerInterceptor(tag Tag) grpc.StreamServerInterceptor {
	return func(srv interface{}, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		e := m.Lookup(info.FullMethod, info.IsClientStream, info.IsServerStream)
		var start time.Time
		if e.Timed() {
			start = time.Now()
		}
		e.Started()
		err := handler(srv, &serverStream{ServerStream: ss, ctx: tag(ss.Context(), e), m: e})
		e.Handled(status.Code(err), start)
		return err
	}
}

// serverStream carries the tagged context into a streaming handler and
// counts the messages that pass.
type serverStream struct {
	grpc.ServerStream
	ctx context.Context
	m   *Method
}

func (s *serverStream) Context() context.Context { return s.ctx }

func (s *serverStream) SendMsg(msg interface{}) error {
	err := s.ServerStream.SendMsg(msg)
	if err == nil {
		s.m.Sent()
	}
	return err
}

func (s *serverStream) RecvMsg(msg interface{}) error {
	err := s.ServerStream.RecvMsg(msg)
	if err == nil {
		s.m.Received()
	}
	return err
}
