package server

import (
	"context"
	"strings"

	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/server/grpcmetrics"
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

// modulePath is the module path a method's calls log under.
func modulePath(fullMethod string) string {
	if name := moduleOf(fullMethod); name != "" {
		return "containerd/" + name
	}
	return "containerd"
}

// callMetrics counts the calls of both gRPC servers, as one set of series,
// and knows each method's module: one table lookup per call finds both.
var callMetrics = grpcmetrics.New(modulePath)

// The interceptors tag each call's log with its method's module and count
// the call for Prometheus.
var (
	unaryInterceptor  = callMetrics.UnaryServerInterceptor(tagModule)
	streamInterceptor = callMetrics.StreamServerInterceptor(tagModule)
)

func tagModule(ctx context.Context, m *grpcmetrics.Method) context.Context {
	return log.WithModule(ctx, m.Module)
}
