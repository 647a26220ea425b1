package server

import (
	"context"
	"strings"

	"google.golang.org/grpc"

	"github.com/llitfkitfk/containerd/log"
)

// moduleOverrides keeps the module names containerd logs with where they
// differ from the service's package name.
var moduleOverrides = map[string]string{
	"snapshots": "snapshot",
}

// moduleOf names the log module of a gRPC method: "/containerd.services.
// tasks.v1.Tasks/Create" logs as "tasks". Calls outside containerd's
// services (gRPC health, reflection) keep the caller's module.
func moduleOf(fullMethod string) string {
	const prefix = "/containerd.services."
	if !strings.HasPrefix(fullMethod, prefix) {
		return ""
	}
	name, _, _ := strings.Cut(fullMethod[len(prefix):], ".")
	if o, ok := moduleOverrides[name]; ok {
		return o
	}
	return name
}

func withModule(ctx context.Context, fullMethod string) context.Context {
	ctx = log.WithModule(ctx, "containerd")
	if m := moduleOf(fullMethod); m != "" {
		ctx = log.WithModule(ctx, m)
	}
	return ctx
}

func unaryInterceptor(ctx context.Context, req interface{}, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (interface{}, error) {
	return handler(withModule(ctx, info.FullMethod), req)
}

func streamInterceptor(srv interface{}, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &moduleStream{ServerStream: ss, ctx: withModule(ss.Context(), info.FullMethod)})
}

// moduleStream carries the tagged context into a streaming handler.
type moduleStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *moduleStream) Context() context.Context { return s.ctx }
