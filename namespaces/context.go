// Package namespaces carries the namespace of a call through its context.
//
// Clients name the namespace in request metadata: gRPC under the key
// "containerd-namespace", ttrpc (shims) under "containerd-namespace-ttrpc".
// Everything namespaced on the server reads it with NamespaceRequired.
package namespaces

import (
	"context"
	"fmt"
	"os"

	"google.golang.org/grpc/metadata"

	"github.com/llitfkitfk/containerd/errdefs"
)

const (
	// GRPCHeader is the gRPC metadata key naming a call's namespace.
	GRPCHeader = "containerd-namespace"
	// TTRPCHeader is the ttrpc metadata key naming a call's namespace.
	TTRPCHeader = "containerd-namespace-ttrpc"
	// NamespaceEnvVar lets tools pick a default namespace.
	NamespaceEnvVar = "CONTAINERD_NAMESPACE"
	// Default is the namespace clients use when none is chosen.
	Default = "default"
)

type namespaceKey struct{}

// WithNamespace returns a context bound to namespace, also set as outgoing
// gRPC metadata so that calls made with it carry the namespace along.
func WithNamespace(ctx context.Context, namespace string) context.Context {
	ctx = context.WithValue(ctx, namespaceKey{}, namespace)
	md, ok := metadata.FromOutgoingContext(ctx)
	if !ok {
		md = metadata.MD{}
	} else {
		md = md.Copy()
	}
	md.Set(GRPCHeader, namespace)
	return metadata.NewOutgoingContext(ctx, md)
}

// NamespaceFromEnv returns a context bound to $CONTAINERD_NAMESPACE, or to
// Default when it is unset.
func NamespaceFromEnv(ctx context.Context) context.Context {
	ns := os.Getenv(NamespaceEnvVar)
	if ns == "" {
		ns = Default
	}
	return WithNamespace(ctx, ns)
}

// Namespace returns the namespace of ctx: the one bound by WithNamespace,
// else the one in incoming gRPC metadata, else the one in ttrpc metadata.
func Namespace(ctx context.Context) (string, bool) {
	if ns, ok := ctx.Value(namespaceKey{}).(string); ok {
		return ns, true
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(GRPCHeader); len(v) > 0 {
			return v[0], true
		}
	}
	return fromTTRPC(ctx)
}

// NamespaceRequired returns the namespace of ctx, which must be present and a
// valid identifier; the error is a FailedPrecondition or InvalidArgument.
func NamespaceRequired(ctx context.Context) (string, error) {
	ns, ok := Namespace(ctx)
	if !ok || ns == "" {
		return "", fmt.Errorf("namespace is required: %w", errdefs.ErrFailedPrecondition)
	}
	if err := Validate(ns); err != nil {
		return "", fmt.Errorf("namespace validation: %w", err)
	}
	return ns, nil
}
