package client

import (
	"context"
	"fmt"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"

	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/remotes"
)

// Push pushes the content under desc to ref's registry through this
// client: of an index, the manifests of the platforms of opts (all, with
// none); blobs first, then the manifests that reference them, then ref's
// tag.
func (c *Client) Push(ctx context.Context, ref string, desc ocispec.Descriptor, opts ...RemoteOpt) error {
	rc, err := c.remoteContext(ctx, opts)
	if err != nil {
		return err
	}
	if rc.PlatformMatcher == nil {
		if rc.PlatformMatcher, err = anyPlatform(rc.Platforms); err != nil {
			return err
		}
	}
	// The digest in the reference makes the pusher tag exactly desc.
	if !strings.Contains(ref, "@") {
		ref = ref + "@" + desc.Digest.String()
	}
	pusher, err := rc.Resolver.Pusher(ctx, ref)
	if err != nil {
		return fmt.Errorf("pusher for %s: %w", ref, err)
	}
	var wrapper func(images.Handler) images.Handler
	if len(rc.BaseHandlers) > 0 || rc.HandlerWrapper != nil {
		wrapper = func(h images.Handler) images.Handler {
			if len(rc.BaseHandlers) > 0 {
				h = images.Handlers(append(slices.Clone(rc.BaseHandlers), h)...)
			}
			if rc.HandlerWrapper != nil {
				h = rc.HandlerWrapper(h)
			}
			return h
		}
	}
	var limit *semaphore.Weighted
	if rc.MaxConcurrentUploads > 0 {
		limit = semaphore.NewWeighted(int64(rc.MaxConcurrentUploads))
	}
	if err := remotes.PushContent(ctx, pusher, desc, c.ContentStore(), limit, rc.PlatformMatcher, wrapper); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}
