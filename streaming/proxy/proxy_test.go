package proxy

import (
	"context"
	"testing"

	"google.golang.org/grpc"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/internal/testutil"
)

// A daemon without a streaming service (containerd 1.6) is
// ErrNotImplemented however the daemon's answer races the stream's first
// message: callers fall back on it.
func TestCreateNoService(t *testing.T) {
	conn := testutil.Serve(t, func(*grpc.Server) error { return nil })
	sc := NewStreamCreator(conn)
	for i := 0; i < 500; i++ {
		if _, err := sc.Create(context.Background(), "s"); !errdefs.IsNotImplemented(err) {
			t.Fatalf("attempt %d: error %v, want not implemented", i, err)
		}
	}
}
