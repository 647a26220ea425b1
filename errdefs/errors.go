// Package errdefs defines the error kinds shared by every domain package and
// the one place where they are translated to and from gRPC status codes.
//
// Packages wrap these values with context (fmt.Errorf("...: %w", err)) and
// callers test them with the Is* helpers, never by matching strings.
package errdefs

import (
	"context"
	"errors"
)

// The error kinds. Each maps to exactly one gRPC code in grpc.go.
var (
	ErrUnknown            = errors.New("unknown")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
	ErrNotImplemented     = errors.New("not implemented")
	// ErrUnauthenticated: the caller's credentials are missing or were
	// refused (a registry's 401).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied: the caller is known but may not do this (a
	// registry's 403 or DENIED).
	ErrPermissionDenied = errors.New("permission denied")
	// The rest are gRPC's other codes, so that a status from a daemon
	// keeps its kind on the client side (Code maps them back).
	ErrAborted           = errors.New("aborted")
	ErrOutOfRange        = errors.New("out of range")
	ErrResourceExhausted = errors.New("resource exhausted")
	ErrInternal          = errors.New("internal")
	ErrDataLoss          = errors.New("data loss")
)

// IsInvalidArgument reports whether err is, or wraps, ErrInvalidArgument.
func IsInvalidArgument(err error) bool { return errors.Is(err, ErrInvalidArgument) }

// IsNotFound reports whether err is, or wraps, ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsAlreadyExists reports whether err is, or wraps, ErrAlreadyExists.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// IsFailedPrecondition reports whether err is, or wraps, ErrFailedPrecondition.
func IsFailedPrecondition(err error) bool { return errors.Is(err, ErrFailedPrecondition) }

// IsUnavailable reports whether err is, or wraps, ErrUnavailable.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// IsNotImplemented reports whether err is, or wraps, ErrNotImplemented.
func IsNotImplemented(err error) bool { return errors.Is(err, ErrNotImplemented) }

// IsUnauthenticated reports whether err is, or wraps, ErrUnauthenticated.
func IsUnauthenticated(err error) bool { return errors.Is(err, ErrUnauthenticated) }

// IsPermissionDenied reports whether err is, or wraps, ErrPermissionDenied.
func IsPermissionDenied(err error) bool { return errors.Is(err, ErrPermissionDenied) }

// IsAborted reports whether err is, or wraps, ErrAborted.
func IsAborted(err error) bool { return errors.Is(err, ErrAborted) }

// IsOutOfRange reports whether err is, or wraps, ErrOutOfRange.
func IsOutOfRange(err error) bool { return errors.Is(err, ErrOutOfRange) }

// IsResourceExhausted reports whether err is, or wraps, ErrResourceExhausted.
func IsResourceExhausted(err error) bool { return errors.Is(err, ErrResourceExhausted) }

// IsInternal reports whether err is, or wraps, ErrInternal.
func IsInternal(err error) bool { return errors.Is(err, ErrInternal) }

// IsDataLoss reports whether err is, or wraps, ErrDataLoss.
func IsDataLoss(err error) bool { return errors.Is(err, ErrDataLoss) }

// IsUnknown reports whether err is, or wraps, ErrUnknown.
func IsUnknown(err error) bool { return errors.Is(err, ErrUnknown) }

// IsCanceled reports whether err is, or wraps, a context cancellation.
func IsCanceled(err error) bool { return errors.Is(err, context.Canceled) }

// IsDeadlineExceeded reports whether err is, or wraps, a context deadline.
func IsDeadlineExceeded(err error) bool { return errors.Is(err, context.DeadlineExceeded) }
