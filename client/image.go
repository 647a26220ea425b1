package client

import (
	"context"
	"io"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/images/archive"
	"github.com/llitfkitfk/containerd/remotes"
)

// Image is an image of the daemon's image store, with the client that
// reads its content.
type Image interface {
	Name() string
	Target() ocispec.Descriptor
	Labels() map[string]string
	// Metadata is the image record as stored.
	Metadata() images.Image
	// Unpack unpacks the image's layers for the client's platform into
	// the snapshotter ("" means the client's default).
	Unpack(ctx context.Context, snapshotterName string, opts ...UnpackOpt) error
	// RootFS is the image's layer diff IDs, in order.
	RootFS(ctx context.Context) ([]digest.Digest, error)
	// Size is the size of the platform's manifest, config and layers.
	Size(ctx context.Context) (int64, error)
	// Config is the descriptor of the platform's image config.
	Config(ctx context.Context) (ocispec.Descriptor, error)
	// Spec is the platform's image config.
	Spec(ctx context.Context) (ocispec.Image, error)
	// IsUnpacked reports whether the top layer's snapshot exists.
	IsUnpacked(ctx context.Context, snapshotterName string) (bool, error)
	ContentStore() content.Store
	// Platform is the matcher choosing the image's platform.
	Platform() platforms.MatchComparer
}

// UnpackOpt sets an option of Image.Unpack.
type UnpackOpt func(context.Context, *UnpackConfig) error

// UnpackConfig holds the options of Image.Unpack.
type UnpackConfig struct {
	// SnapshotterOpts are passed to the snapshotter's Prepare and Commit
	// (labels, for instance).
	SnapshotLabels map[string]string
}

// NewImage wraps an image record of the store.
func NewImage(c *Client, i images.Image) Image { panic("client.NewImage: not yet implemented") }

// NewImageWithPlatform wraps an image record for the given platform.
func NewImageWithPlatform(c *Client, i images.Image, p platforms.MatchComparer) Image {
	panic("client.NewImageWithPlatform: not yet implemented")
}

// GetImage returns the image named ref.
func (c *Client) GetImage(ctx context.Context, ref string) (Image, error) {
	panic("client.GetImage: not yet implemented")
}

// ListImages returns the images matching any of filters.
func (c *Client) ListImages(ctx context.Context, filters ...string) ([]Image, error) {
	panic("client.ListImages: not yet implemented")
}

// RemoteContext holds the options of a client-side Pull or Push (the
// `--local` path: the client talks to the registry itself).
type RemoteContext struct {
	// Resolver talks to the registry; nil means a resolver on the
	// default hosts configuration.
	Resolver remotes.Resolver
	// PlatformMatcher chooses what to fetch; nil means the client's
	// platform only.
	PlatformMatcher platforms.MatchComparer
	// Unpack unpacks the image into Snapshotter after fetching.
	Unpack      bool
	Snapshotter string
	// Labels are set on the image record.
	Labels map[string]string
	// BaseHandlers run on every descriptor before it is fetched or pushed
	// (progress tracking, for instance).
	BaseHandlers []images.Handler
	// AllMetadata fetches the manifests and configs of every platform,
	// the layers of the matched one only.
	AllMetadata            bool
	MaxConcurrentDownloads int
	MaxConcurrentUploads   int
}

// RemoteOpt sets a RemoteContext field.
type RemoteOpt func(*Client, *RemoteContext) error

// Pull fetches ref from its registry through this client (not the
// daemon's transfer service) and records it in the image store.
func (c *Client) Pull(ctx context.Context, ref string, opts ...RemoteOpt) (Image, error) {
	panic("client.Pull: not yet implemented")
}

// Fetch fetches ref's content without recording an image.
func (c *Client) Fetch(ctx context.Context, ref string, opts ...RemoteOpt) (images.Image, error) {
	panic("client.Fetch: not yet implemented")
}

// Push pushes the content under desc to ref's registry through this
// client.
func (c *Client) Push(ctx context.Context, ref string, desc ocispec.Descriptor, opts ...RemoteOpt) error {
	panic("client.Push: not yet implemented")
}

// ImportOpt sets an option of Import.
type ImportOpt func(*ImportConfig) error

// ImportConfig holds the options of Import.
type ImportConfig struct {
	// ImageRefTranslator maps the archive's names to image names.
	ImageRefTranslator func(string) string
	// DigestRef names images that have no name (or all, with
	// !SkipDigestRef... see WithDigestRef); nil leaves them unnamed.
	DigestRef     func(digest.Digest) string
	SkipDigestRef func(name string) bool
	// IndexName records the archive's index itself under this name.
	IndexName       string
	AllPlatforms    bool
	PlatformMatcher platforms.MatchComparer
	Compress        bool
	Labels          map[string]string
}

// Import reads an OCI layout or `docker save` archive into the content
// store and records its images.
func (c *Client) Import(ctx context.Context, r io.Reader, opts ...ImportOpt) ([]images.Image, error) {
	panic("client.Import: not yet implemented")
}

// Export writes the images chosen by opts (archive.WithImage...) to w as
// an OCI layout archive with Docker's manifest.json.
func (c *Client) Export(ctx context.Context, w io.Writer, opts ...archive.ExportOpt) error {
	panic("client.Export: not yet implemented")
}
