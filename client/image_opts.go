package client

import (
	"fmt"
	"maps"
	"slices"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/remotes"
	"github.com/llitfkitfk/containerd/snapshots"
)

// The options of Pull, Fetch and Push, named as containerd's client
// names them.

// WithResolver talks to registries through resolver (the default is a
// resolver on hosts configured by remotes/docker/config, with no host
// directory).
func WithResolver(resolver remotes.Resolver) RemoteOpt {
	return func(_ *Client, c *RemoteContext) error { c.Resolver = resolver; return nil }
}

// WithPlatform adds a platform ("os/arch[/variant]"; "" is this
// machine's) to those handled. Pull takes one at most; Fetch and Push
// any number.
func WithPlatform(platform string) RemoteOpt {
	if platform == "" {
		platform = platforms.DefaultString()
	}
	return func(_ *Client, c *RemoteContext) error {
		if _, err := platforms.Parse(platform); err != nil {
			return fmt.Errorf("platform %q: %v: %w", platform, err, errdefs.ErrInvalidArgument)
		}
		if !slices.Contains(c.Platforms, platform) {
			c.Platforms = append(c.Platforms, platform)
		}
		return nil
	}
}

// WithPlatformMatcher chooses the platforms handled, and their order of
// preference; it overrides WithPlatform.
func WithPlatformMatcher(m platforms.MatchComparer) RemoteOpt {
	return func(_ *Client, c *RemoteContext) error { c.PlatformMatcher = m; return nil }
}

// WithPullUnpack unpacks the pulled image into the snapshotter
// (WithPullSnapshotter; else the default) as its layers arrive.
func WithPullUnpack(_ *Client, c *RemoteContext) error {
	c.Unpack = true
	return nil
}

// WithUnpackOpts adds options to the unpack of a pull.
func WithUnpackOpts(opts []UnpackOpt) RemoteOpt {
	return func(_ *Client, c *RemoteContext) error {
		c.UnpackOpts = append(c.UnpackOpts, opts...)
		return nil
	}
}

// WithPullSnapshotter names the snapshotter a pull unpacks into, with
// options for the snapshots it makes.
func WithPullSnapshotter(snapshotterName string, opts ...snapshots.Opt) RemoteOpt {
	return func(_ *Client, c *RemoteContext) error {
		c.Snapshotter = snapshotterName
		c.SnapshotterOpts = opts
		return nil
	}
}

// WithPullLabel sets a label on the pulled image.
func WithPullLabel(key, value string) RemoteOpt {
	return func(_ *Client, c *RemoteContext) error {
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		c.Labels[key] = value
		return nil
	}
}

// WithPullLabels sets labels on the pulled image.
func WithPullLabels(labels map[string]string) RemoteOpt {
	return func(_ *Client, c *RemoteContext) error {
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		maps.Copy(c.Labels, labels)
		return nil
	}
}

// WithChildLabelMap names the labels by which fetched content keeps its
// children from the collector (default images.ChildGCLabels).
func WithChildLabelMap(f func(ocispec.Descriptor) []string) RemoteOpt {
	return func(_ *Client, c *RemoteContext) error { c.ChildLabelMap = f; return nil }
}

// WithImageHandler adds a handler called on every descriptor before it
// is fetched or pushed.
func WithImageHandler(h images.Handler) RemoteOpt {
	return func(_ *Client, c *RemoteContext) error {
		c.BaseHandlers = append(c.BaseHandlers, h)
		return nil
	}
}

// WithImageHandlerWrapper wraps the whole handler of a pull or push.
func WithImageHandlerWrapper(w func(images.Handler) images.Handler) RemoteOpt {
	return func(_ *Client, c *RemoteContext) error { c.HandlerWrapper = w; return nil }
}

// WithMaxConcurrentDownloads bounds the layers downloaded at once.
func WithMaxConcurrentDownloads(n int) RemoteOpt {
	return func(_ *Client, c *RemoteContext) error { c.MaxConcurrentDownloads = n; return nil }
}

// WithMaxConcurrentUploadedLayers bounds the blobs a push uploads at once.
func WithMaxConcurrentUploadedLayers(n int) RemoteOpt {
	return func(_ *Client, c *RemoteContext) error { c.MaxConcurrentUploads = n; return nil }
}

// WithAllMetadata fetches the manifests and configs of every platform of
// an index, and the layers of the chosen ones only.
func WithAllMetadata() RemoteOpt {
	return func(_ *Client, c *RemoteContext) error { c.AllMetadata = true; return nil }
}
