package server

import (
	"context"
	"strings"
	"sync"

	"google.golang.org/grpc"

	"github.com/llitfkitfk/containerd/log"
)

// moduleOverrides keeps the module names containerd logs with where they
// differ from the service's package name.
var moduleOverrides = map[string]string{
	"snapshots": "snapshot",
}

// moduleOf names the log module of a gRPC method: "/containerd.services.
// tasks.v1.Tasks/Create" logs as "tasks", the CRI's
// "/runtime.v1.RuntimeService/..." as "cri". Other calls (gRPC health,
// reflection) keep the caller's module.
func moduleOf(fullMethod string) string {
	const prefix = "/containerd.services."
	if strings.HasPrefix(fullMethod, "/runtime.v1.") {
		return "cri"
	}
	if !strings.HasPrefix(fullMethod, prefix) {
		return ""
	}
	name, _, _ := strings.Cut(fullMethod[len(prefix):], ".")
	if o, ok := moduleOverrides[name]; ok {
		return o
	}
	return name
}

// modules caches each method's module path, so that tagging a call costs
// one context value and no string work.
var modules sync.Map // full method -> module path

func withModule(ctx context.Context, fullMethod string) context.Context {
	m, ok := modules.Load(fullMethod)
	if !ok {
		path := "containerd"
		if name := moduleOf(fullMethod); name != "" {
			path += "/" + name
		}
		m, _ = modules.LoadOrStore(fullMethod, path)
	}
	return log.WithModule(ctx, m.(string))
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
