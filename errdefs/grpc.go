package errdefs

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
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

// kinds pairs each error kind with its gRPC code, both ways.
var kinds = []struct {
	kind error
	code codes.Code
}{
	{ErrInvalidArgument, codes.InvalidArgument},
	{ErrNotFound, codes.NotFound},
	{ErrAlreadyExists, codes.AlreadyExists},
	{ErrFailedPrecondition, codes.FailedPrecondition},
	{ErrUnavailable, codes.Unavailable},
	{ErrNotImplemented, codes.Unimplemented},
	{ErrUnauthenticated, codes.Unauthenticated},
	{ErrPermissionDenied, codes.PermissionDenied},
	{ErrAborted, codes.Aborted},
	{ErrOutOfRange, codes.OutOfRange},
	{ErrResourceExhausted, codes.ResourceExhausted},
	{ErrInternal, codes.Internal},
	{ErrDataLoss, codes.DataLoss},
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{ErrUnknown, codes.Unknown},
}

// Code returns the gRPC code for a domain error: that of the first kind
// it wraps, else that of a status it carries, else Unknown.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	for _, k := range kinds {
		if errors.Is(err, k.kind) {
			return k.code
		}
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return codes.Unknown
}

// FromGRPC turns a gRPC status error back into a domain error, so that code
// on the client side of a connection can use the Is* helpers. The error
// reads as the daemon's message alone, one line without gRPC's "rpc error:
// code = ... desc =" framing. An error that carries no status (io.EOF, a
// domain error already) is returned as it is.
func FromGRPC(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	kind := ErrUnknown
	for _, k := range kinds {
		if k.code == st.Code() {
			kind = k.kind
			break
		}
	}
	msg := cleanMessage(st.Message())
	// The message usually ends with the kind's own text; avoid saying it twice.
	msg = strings.TrimSuffix(msg, ": "+kind.Error())
	if msg == kind.Error() || msg == "" {
		return kind
	}
	return fmt.Errorf("%s: %w", msg, kind)
}

// rpcErrorPrefix is the framing gRPC gives a status error's text; it shows
// up inside messages when a daemon wrapped an error it got from another.
var rpcErrorPrefix = regexp.MustCompile(`rpc error: code = [A-Za-z]+ desc = `)

// cleanMessage takes gRPC's framing out of a status message: nested "rpc
// error" prefixes, and the quoting of a transport failure, which reads
// `connection error: desc = "transport: Error while dialing: dial unix
// /x.sock: connect: connection refused"`.
func cleanMessage(msg string) string {
	msg = rpcErrorPrefix.ReplaceAllString(msg, "")
	if inner, ok := strings.CutPrefix(msg, "connection error: desc = "); ok {
		if u, err := strconv.Unquote(inner); err == nil {
			inner = u
		}
		inner = strings.TrimPrefix(inner, "transport: ")
		inner = strings.TrimPrefix(inner, "Error while dialing: ")
		inner = strings.TrimPrefix(inner, "error while dialing: ")
		msg = "connection error: " + inner
	}
	return strings.TrimSpace(msg)
}
