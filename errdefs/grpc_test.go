package errdefs

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// Every kind maps to its own code and back, keeping the message, and
// the text of the error a client sees is the daemon's message alone.
func TestKindsMapBothWays(t *testing.T) {
	for _, tc := range []struct {
		kind error
		code codes.Code
		is   func(error) bool
	}{
		{ErrInvalidArgument, codes.InvalidArgument, IsInvalidArgument},
		{ErrNotFound, codes.NotFound, IsNotFound},
		{ErrAlreadyExists, codes.AlreadyExists, IsAlreadyExists},
		{ErrFailedPrecondition, codes.FailedPrecondition, IsFailedPrecondition},
		{ErrUnavailable, codes.Unavailable, IsUnavailable},
		{ErrNotImplemented, codes.Unimplemented, IsNotImplemented},
		{ErrUnauthenticated, codes.Unauthenticated, IsUnauthenticated},
		{ErrPermissionDenied, codes.PermissionDenied, IsPermissionDenied},
		{ErrAborted, codes.Aborted, IsAborted},
		{ErrOutOfRange, codes.OutOfRange, IsOutOfRange},
		{ErrResourceExhausted, codes.ResourceExhausted, IsResourceExhausted},
		{ErrInternal, codes.Internal, IsInternal},
		{ErrDataLoss, codes.DataLoss, IsDataLoss},
		{ErrUnknown, codes.Unknown, IsUnknown},
		{context.Canceled, codes.Canceled, IsCanceled},
		{context.DeadlineExceeded, codes.DeadlineExceeded, IsDeadlineExceeded},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			err := fmt.Errorf("image \"x\": %w", tc.kind)
			if c := Code(err); c != tc.code {
				t.Fatalf("Code: %v, want %v", c, tc.code)
			}
			g := ToGRPC(err)
			if c := status.Code(g); c != tc.code {
				t.Fatalf("ToGRPC code: %v, want %v", c, tc.code)
			}
			back := FromGRPC(g)
			if !tc.is(back) {
				t.Fatalf("FromGRPC(%v) = %v, not of its kind", g, back)
			}
			if back.Error() != err.Error() {
				t.Fatalf("FromGRPC text %q, want %q", back, err)
			}
			// The bare kind comes back as the kind itself.
			if bare := FromGRPC(status.Error(tc.code, tc.kind.Error())); bare != tc.kind {
				t.Fatalf("bare %v came back as %#v", tc.code, bare)
			}
		})
	}
}

func TestFromGRPCMessages(t *testing.T) {
	for _, tc := range []struct {
		in   error
		want string
		is   func(error) bool
	}{
		// A containerd daemon's message, which ends with the kind.
		{status.Error(codes.NotFound, "content digest sha256:abc: not found"), "content digest sha256:abc: not found", IsNotFound},
		// A message with no kind in it gets the kind appended.
		{status.Error(codes.NotFound, "image \"x\""), "image \"x\": not found", IsNotFound},
		// An error the daemon got from another daemon, framing and all.
		{status.Error(codes.Unavailable, "pull: rpc error: code = Unavailable desc = ref locked"), "pull: ref locked: unavailable", IsUnavailable},
		// A failed connection reads as the dial's own error.
		{status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial unix /x.sock: connect: connection refused"`),
			"connection error: dial unix /x.sock: connect: connection refused: unavailable", IsUnavailable},
		// A status wrapped by the client keeps its kind.
		{fmt.Errorf("open: %w", status.Error(codes.AlreadyExists, "blob exists")), "open: blob exists: already exists", IsAlreadyExists},
		{status.Error(codes.Code(99), "odd"), "odd: unknown", IsUnknown},
	} {
		got := FromGRPC(tc.in)
		if got.Error() != tc.want || !tc.is(got) {
			t.Errorf("FromGRPC(%v) = %q, want %q of its kind", tc.in, got, tc.want)
		}
	}
}

// Errors that did not come from gRPC keep their identity.
func TestFromGRPCPassesOthers(t *testing.T) {
	if FromGRPC(nil) != nil {
		t.Fatal("nil is not nil")
	}
	for _, err := range []error{io.EOF, io.ErrUnexpectedEOF, fmt.Errorf("x: %w", ErrNotFound)} {
		if got := FromGRPC(err); got != err {
			t.Errorf("FromGRPC(%v) = %v, want it unchanged", err, got)
		}
	}
}
