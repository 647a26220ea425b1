package remotes

import (
	"context"

	"github.com/containerd/platforms"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/images"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"
)

// FetchHandler returns a handler that copies each descriptor it is given
// from fetcher into ingester, verifying size and digest, resuming an ingest
// left by an earlier attempt, and doing nothing for content already there.
// It returns no children: chain it with images.ChildrenHandler.
func FetchHandler(ingester content.Ingester, fetcher Fetcher) images.HandlerFunc {
	panic("remotes.FetchHandler: not yet implemented")
}

// PushContent pushes desc and everything it references from provider
// through pusher: children before parents, so that a registry never sees a
// manifest naming a blob it lacks; at most limiter's weight at once.
// platform, if set, limits an index's manifests to those it matches.
// wrapper, if set, wraps the handler that walks the graph (to report
// progress, for instance).
func PushContent(ctx context.Context, pusher Pusher, desc ocispec.Descriptor, provider content.Provider, limiter *semaphore.Weighted, platform platforms.MatchComparer, wrapper func(images.Handler) images.Handler) error {
	panic("remotes.PushContent: not yet implemented")
}
