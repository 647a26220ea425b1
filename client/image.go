package client

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/images/archive"
	"github.com/llitfkitfk/containerd/remotes"
	"github.com/llitfkitfk/containerd/snapshots"
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
	// SnapshotLabels are set on every snapshot the unpack makes.
	SnapshotLabels map[string]string
	// SnapshotOpts are passed to the snapshotter's Prepare and Commit.
	SnapshotOpts []snapshots.Opt
	// ApplyOpts are passed to the differ's Apply.
	ApplyOpts []diff.ApplyOpt
	// CheckPlatformSupported refuses to unpack an image whose config
	// names a platform the snapshotter does not declare (introspection).
	CheckPlatformSupported bool
}

// NewImage wraps an image record of the store, for the client's platform.
func NewImage(c *Client, i images.Image) Image {
	return &image{client: c, i: i, platform: defaultPlatform()}
}

// NewImageWithPlatform wraps an image record for the given platform.
func NewImageWithPlatform(c *Client, i images.Image, p platforms.MatchComparer) Image {
	if p == nil {
		p = defaultPlatform()
	}
	return &image{client: c, i: i, platform: p}
}

// defaultPlatform is the platform of images the caller chose none for:
// this machine's, preferring its own variant and accepting compatible
// ones, as containerd's client does.
func defaultPlatform() platforms.MatchComparer { return platforms.Default() }

// GetImage returns the image named ref; NotFound if there is none.
func (c *Client) GetImage(ctx context.Context, ref string) (Image, error) {
	i, err := c.ImageService().Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	return NewImage(c, i), nil
}

// ListImages returns the images matching any of filters (all with none).
func (c *Client) ListImages(ctx context.Context, filters ...string) ([]Image, error) {
	list, err := c.ImageService().List(ctx, filters...)
	if err != nil {
		return nil, err
	}
	out := make([]Image, len(list))
	for n, i := range list {
		out[n] = NewImage(c, i)
	}
	return out, nil
}

// image is an Image: the record, and the platform whose manifest its
// methods are about.
type image struct {
	client   *Client
	i        images.Image
	platform platforms.MatchComparer

	// An image record's target is immutable content: what is read of it
	// once (the platform's config, its diff IDs) never changes, and a
	// run asks for it several times (is it unpacked, its snapshot's
	// parent, its spec).
	mu      sync.Mutex
	config  *ocispec.Descriptor
	spec    *ocispec.Image
	diffIDs []digest.Digest
}

func (i *image) Name() string                      { return i.i.Name }
func (i *image) Target() ocispec.Descriptor        { return i.i.Target }
func (i *image) Labels() map[string]string         { return i.i.Labels }
func (i *image) Metadata() images.Image            { return i.i }
func (i *image) ContentStore() content.Store       { return i.client.ContentStore() }
func (i *image) Platform() platforms.MatchComparer { return i.platform }

func (i *image) Config(ctx context.Context) (ocispec.Descriptor, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.config != nil {
		return *i.config, nil
	}
	desc, err := images.Config(ctx, i.ContentStore(), i.i.Target, i.platform)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("image %s: %w", i.i.Name, err)
	}
	i.config = &desc
	return desc, nil
}

func (i *image) Spec(ctx context.Context) (ocispec.Image, error) {
	desc, err := i.Config(ctx)
	if err != nil {
		return ocispec.Image{}, err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.spec != nil {
		return *i.spec, nil
	}
	spec, err := images.ReadConfig(ctx, i.ContentStore(), desc)
	if err != nil {
		return ocispec.Image{}, fmt.Errorf("image %s: config: %w", i.i.Name, err)
	}
	i.spec = &spec
	return spec, nil
}

func (i *image) RootFS(ctx context.Context) ([]digest.Digest, error) {
	spec, err := i.Spec(ctx)
	if err != nil {
		return nil, err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.diffIDs != nil {
		return i.diffIDs, nil
	}
	for _, d := range spec.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("image %s: config diff ID %q: %v: %w", i.i.Name, d, err, errdefs.ErrInvalidArgument)
		}
	}
	i.diffIDs = spec.RootFS.DiffIDs
	if i.diffIDs == nil {
		i.diffIDs = []digest.Digest{}
	}
	return i.diffIDs, nil
}

// Size adds up the sizes the descriptors declare, of the target, and of
// the one manifest the platform chooses with its config and layers: what
// `ctr images ls` shows. Layers need not be present; manifests must.
func (i *image) Size(ctx context.Context) (int64, error) {
	return imageSize(ctx, i.ContentStore(), i.i.Target, i.platform)
}

func imageSize(ctx context.Context, provider content.Provider, target ocispec.Descriptor, platform platforms.MatchComparer) (int64, error) {
	var size int64
	children := images.LimitManifests(images.FilterPlatforms(images.ChildrenHandler(provider), platform), platform, 1)
	// Walk visits one descriptor at a time: size needs no lock.
	err := images.Walk(ctx, images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if desc.Size < 0 {
			return nil, fmt.Errorf("%s %s: size %d: %w", desc.MediaType, desc.Digest, desc.Size, errdefs.ErrInvalidArgument)
		}
		size += desc.Size
		return children(ctx, desc)
	}), target)
	return size, err
}

// IsUnpacked reports whether the snapshot of the image's whole chain of
// layers is in the snapshotter.
func (i *image) IsUnpacked(ctx context.Context, snapshotterName string) (bool, error) {
	name, err := i.client.imageSnapshotter(ctx, snapshotterName)
	if err != nil {
		return false, err
	}
	diffIDs, err := i.RootFS(ctx)
	if err != nil {
		return false, err
	}
	if len(diffIDs) == 0 {
		return false, nil
	}
	chainID := identity.ChainID(diffIDs).String()
	if _, err := i.client.SnapshotService(name).Stat(ctx, chainID); err != nil {
		if errdefs.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("snapshot %s in %s: %w", chainID, name, err)
	}
	return true, nil
}

// RemoteContext holds the options of a client-side Pull or Push (the
// `--local` path: the client talks to the registry itself).
type RemoteContext struct {
	// Resolver talks to the registry; nil means a resolver on the
	// default hosts configuration.
	Resolver remotes.Resolver
	// PlatformMatcher chooses what to fetch; nil means Platforms, or the
	// client's platform only.
	PlatformMatcher platforms.MatchComparer
	// Platforms, used when PlatformMatcher is nil, are the platforms
	// (as "os/arch[/variant]") to fetch.
	Platforms []string
	// Unpack unpacks the image into Snapshotter after fetching.
	Unpack      bool
	Snapshotter string
	// SnapshotterOpts are given to every snapshot the unpack makes.
	SnapshotterOpts []snapshots.Opt
	// UnpackOpts are the options of the unpack.
	UnpackOpts []UnpackOpt
	// Labels are set on the image record.
	Labels map[string]string
	// BaseHandlers run on every descriptor before it is fetched or pushed
	// (progress tracking, for instance).
	BaseHandlers []images.Handler
	// HandlerWrapper wraps the whole handler, to act before and after
	// the built-in ones.
	HandlerWrapper func(images.Handler) images.Handler
	// ChildLabelMap names the labels a parent keeps its children by
	// (nil: images.ChildGCLabels).
	ChildLabelMap func(ocispec.Descriptor) []string
	// AllMetadata fetches the manifests and configs of every platform,
	// the layers of the matched one only.
	AllMetadata            bool
	MaxConcurrentDownloads int
	MaxConcurrentUploads   int
}

// RemoteOpt sets a RemoteContext field.
type RemoteOpt func(*Client, *RemoteContext) error

// ImportOpt sets an option of Import.
type ImportOpt func(*ImportConfig) error

// ImportConfig holds the options of Import.
type ImportConfig struct {
	// ImageRefTranslator maps the names the archive's index gives its
	// manifests (org.opencontainers.image.ref.name) to image names;
	// io.containerd.image.name annotations are taken as they are.
	ImageRefTranslator func(string) string
	// DigestRef names an image after each manifest's digest (nil: none),
	// except for those SkipDigestRef, given the manifest's name ("" if
	// it has none), says to skip.
	DigestRef     func(digest.Digest) string
	SkipDigestRef func(name string) bool
	// IndexName records the archive's index itself under this name.
	IndexName string
	// AllPlatforms keeps every manifest of the archive; else
	// PlatformMatcher (nil: the client's platform) chooses.
	AllPlatforms    bool
	PlatformMatcher platforms.MatchComparer
	// Compress gzips the uncompressed layers of a `docker save` archive.
	Compress bool
	// Labels replace the labels of the images made or updated.
	Labels map[string]string
	// SkipMissing accepts an archive that lacks some of the blobs its
	// manifests name.
	SkipMissing bool
	// DiscardLayers leaves layers out of what the manifests keep from
	// the collector: once unpacked, only their snapshots remain.
	DiscardLayers bool
}

// Import reads an OCI layout or `docker save` archive into the content
// store and records its images; see import.go.
func (c *Client) Import(ctx context.Context, r io.Reader, opts ...ImportOpt) ([]images.Image, error) {
	return c.importArchive(ctx, r, opts...)
}

// Export writes the images chosen by opts (archive.WithImage...) to w as
// an OCI layout archive with Docker's manifest.json.
func (c *Client) Export(ctx context.Context, w io.Writer, opts ...archive.ExportOpt) error {
	return archive.Export(ctx, c.ContentStore(), w, opts...)
}
