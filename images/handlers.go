package images

import (
	"context"
	"errors"
	"fmt"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

var (
	// ErrSkipDesc, returned by a handler, skips the descriptor's children
	// without failing the walk.
	ErrSkipDesc = errors.New("skip descriptor")
	// ErrStopHandler, returned by a handler in a Handlers chain, stops the
	// chain there and keeps the children returned so far.
	ErrStopHandler = errors.New("stop handler")
)

// Handler visits a descriptor of an image's graph and returns its children
// to visit next.
type Handler interface {
	Handle(ctx context.Context, desc ocispec.Descriptor) (subdescs []ocispec.Descriptor, err error)
}

// HandlerFunc is a function that is a Handler.
type HandlerFunc func(ctx context.Context, desc ocispec.Descriptor) (subdescs []ocispec.Descriptor, err error)

// Handle calls fn.
func (fn HandlerFunc) Handle(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	return fn(ctx, desc)
}

// Handlers chains handlers: each is called in turn and the children of all
// are returned together. ErrStopHandler ends the chain early.
func Handlers(handlers ...Handler) HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		var children []ocispec.Descriptor
		for _, h := range handlers {
			ch, err := h.Handle(ctx, desc)
			if err != nil {
				if errors.Is(err, ErrStopHandler) {
					break
				}
				return nil, err
			}
			children = append(children, ch...)
		}
		return children, nil
	}
}

// Walk visits descs and their children depth first, one at a time.
func Walk(ctx context.Context, handler Handler, descs ...ocispec.Descriptor) error {
	for _, desc := range descs {
		children, err := handler.Handle(ctx, desc)
		if err != nil {
			if errors.Is(err, ErrSkipDesc) {
				continue
			}
			return err
		}
		if len(children) > 0 {
			if err := Walk(ctx, handler, children...); err != nil {
				return err
			}
		}
	}
	return nil
}

// Dispatch visits descs and their children concurrently: every descriptor
// in its own goroutine, at most limiter's weight of them in a handler at
// once (nil: no limit). The first error cancels the rest and is returned.
func Dispatch(ctx context.Context, handler Handler, limiter *semaphore.Weighted, descs ...ocispec.Descriptor) error {
	eg, ctx := errgroup.WithContext(ctx)
	for _, desc := range descs {
		eg.Go(func() error {
			if limiter != nil {
				if err := limiter.Acquire(ctx, 1); err != nil {
					return err
				}
			}
			children, err := handler.Handle(ctx, desc)
			if limiter != nil {
				limiter.Release(1)
			}
			if err != nil {
				if errors.Is(err, ErrSkipDesc) {
					return nil
				}
				return nameDesc(desc, err)
			}
			if len(children) > 0 {
				return Dispatch(ctx, handler, limiter, children...)
			}
			return nil
		})
	}
	return eg.Wait()
}

// nameDesc says which descriptor err is about, unless err already does:
// handlers that fetch or read usually name the digest themselves, and a
// second prefix only makes the message longer.
func nameDesc(desc ocispec.Descriptor, err error) error {
	if strings.Contains(err.Error(), desc.Digest.String()) {
		return err
	}
	return fmt.Errorf("%s %s: %w", desc.MediaType, desc.Digest, err)
}
