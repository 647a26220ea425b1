package errdefs

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestGRPCRoundTrip(t *testing.T) {
	for kind, code := range map[error]codes.Code{
		ErrNotFound:         codes.NotFound,
		ErrUnauthenticated:  codes.Unauthenticated,
		ErrPermissionDenied: codes.PermissionDenied,
		ErrUnavailable:      codes.Unavailable,
	} {
		err := fmt.Errorf("registry said no: %w", kind)
		g := ToGRPC(err)
		if status.Code(g) != code {
			t.Fatalf("%v: code %v, want %v", kind, status.Code(g), code)
		}
		back := FromGRPC(g)
		if !errors.Is(back, kind) || back.Error() != err.Error() {
			t.Fatalf("%v: back %q", kind, back)
		}
	}
}
