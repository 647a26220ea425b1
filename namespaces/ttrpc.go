package namespaces

import (
	"context"

	"github.com/containerd/ttrpc"

	"github.com/llitfkitfk/containerd/identifiers"
)

func fromTTRPC(ctx context.Context) (string, bool) {
	if v, ok := ttrpc.GetMetadataValue(ctx, TTRPCHeader); ok {
		return v, true
	}
	return "", false
}

// Validate reports whether name may be used as a namespace.
func Validate(name string) error {
	return identifiers.Validate(name)
}
