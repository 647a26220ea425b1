package errdefs

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ToGRPC turns a domain error into a gRPC status error, keeping its message.
// Errors that already carry a status pass through unchanged, so calling it
// twice is harmless.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(Code(err), err.Error())
}

// ToGRPCf is ToGRPC with extra context prepended to the message.
func ToGRPCf(err error, format string, args ...interface{}) error {
	if err == nil {
		return nil
	}
	return ToGRPC(fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err))
}

// Code returns the gRPC code for a domain error.
func Code(err error) codes.Code {
	switch {
	case err == nil:
		return codes.OK
	case IsInvalidArgument(err):
		return codes.InvalidArgument
	case IsNotFound(err):
		return codes.NotFound
	case IsAlreadyExists(err):
		return codes.AlreadyExists
	case IsFailedPrecondition(err):
		return codes.FailedPrecondition
	case IsUnavailable(err):
		return codes.Unavailable
	case IsNotImplemented(err):
		return codes.Unimplemented
	case IsUnauthenticated(err):
		return codes.Unauthenticated
	case IsPermissionDenied(err):
		return codes.PermissionDenied
	case IsCanceled(err):
		return codes.Canceled
	case IsDeadlineExceeded(err):
		return codes.DeadlineExceeded
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return codes.Unknown
}

// FromGRPC turns a gRPC status error back into a domain error, so that code
// on the client side of a connection can use the Is* helpers.
func FromGRPC(err error) error {
	if err == nil {
		return nil
	}
	var kind error
	switch status.Code(err) {
	case codes.InvalidArgument:
		kind = ErrInvalidArgument
	case codes.NotFound:
		kind = ErrNotFound
	case codes.AlreadyExists:
		kind = ErrAlreadyExists
	case codes.FailedPrecondition:
		kind = ErrFailedPrecondition
	case codes.Unavailable:
		kind = ErrUnavailable
	case codes.Unimplemented:
		kind = ErrNotImplemented
	case codes.Unauthenticated:
		kind = ErrUnauthenticated
	case codes.PermissionDenied:
		kind = ErrPermissionDenied
	case codes.Canceled:
		kind = context.Canceled
	case codes.DeadlineExceeded:
		kind = context.DeadlineExceeded
	default:
		kind = ErrUnknown
	}
	msg := status.Convert(err).Message()
	// The message usually ends with the kind's own text; avoid saying it twice.
	msg = strings.TrimSuffix(msg, ": "+kind.Error())
	if msg == kind.Error() || msg == "" {
		return kind
	}
	return fmt.Errorf("%s: %w", msg, kind)
}
