package leases

import (
	"context"

	"google.golang.org/grpc/metadata"
)

// GRPCHeader is the gRPC metadata key naming the lease a call's writes go
// under.
const GRPCHeader = "containerd-lease"

type leaseKey struct{}

// WithLease returns a context whose writes are held by lease id, also set
// as outgoing gRPC metadata.
func WithLease(ctx context.Context, id string) context.Context {
	ctx = context.WithValue(ctx, leaseKey{}, id)
	md, ok := metadata.FromOutgoingContext(ctx)
	if !ok {
		md = metadata.MD{}
	} else {
		md = md.Copy()
	}
	md.Set(GRPCHeader, id)
	return metadata.NewOutgoingContext(ctx, md)
}

// FromContext returns the lease of ctx: the one bound by WithLease, else
// the one named in incoming gRPC metadata.
func FromContext(ctx context.Context) (string, bool) {
	if id, ok := ctx.Value(leaseKey{}).(string); ok {
		return id, id != "" // "": WithoutLease
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(GRPCHeader); len(v) > 0 && v[0] != "" {
			return v[0], true
		}
	}
	return "", false
}

// WithoutLease returns ctx with no lease, whatever ctx or the gRPC request
// it came from carried: what is written with it is not held by a lease.
func WithoutLease(ctx context.Context) context.Context {
	return context.WithValue(ctx, leaseKey{}, "")
}
