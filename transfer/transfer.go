// Package transfer defines the transfer service: one call that moves an
// image from a source to a destination (a registry, the image store, an
// archive stream), reporting progress as it goes. The objects a client
// names on the wire (containerd.types.transfer's OCIRegistry, ImageStore,
// ImageImportStream, ImageExportStream) become the implementations of the
// interfaces below; transfer/local matches a source and destination pair to
// the operation (pull, push, import, export, tag) that moves between them.
package transfer

import (
	"context"
	"io"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/remotes"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Transferrer moves src to dst. An ErrNotImplemented error means it does
// not know the pair; the service then tries the next transferrer.
type Transferrer interface {
	Transfer(ctx context.Context, src, dst interface{}, opts ...Opt) error
}

// ImageResolver is a source that resolves a name to a descriptor (a
// registry).
type ImageResolver interface {
	Resolve(ctx context.Context) (name string, desc ocispec.Descriptor, err error)
}

// ImageFetcher is a source of image content (a registry).
type ImageFetcher interface {
	ImageResolver
	Fetcher(ctx context.Context, ref string) (remotes.Fetcher, error)
}

// ImagePusher is a destination that takes image content (a registry).
type ImagePusher interface {
	Pusher(ctx context.Context, desc ocispec.Descriptor) (remotes.Pusher, error)
}

// ImageFilterer narrows the descriptors copied (platforms, for instance).
type ImageFilterer interface {
	ImageFilter(h images.HandlerFunc, cs content.Store) images.HandlerFunc
}

// ImageStorer is a destination that records images (the image store).
type ImageStorer interface {
	Store(ctx context.Context, desc ocispec.Descriptor, store images.Store) ([]images.Image, error)
}

// ImageGetter is a source that names images of the image store.
type ImageGetter interface {
	Get(ctx context.Context, store images.Store) (images.Image, error)
}

// ImageLookup is a source that names one or more images of the image
// store (an export of several images).
type ImageLookup interface {
	Lookup(ctx context.Context, store images.Store) ([]images.Image, error)
}

// ImageExporter is a destination that writes images out (an archive).
type ImageExporter interface {
	Export(ctx context.Context, cs content.Store, imgs []images.Image) error
}

// ImageImporter is a source that reads images in (an archive) and returns
// the index describing them.
type ImageImporter interface {
	Import(ctx context.Context, store content.Store) (ocispec.Descriptor, error)
}

// ImageImportStreamer is an ImageImporter whose bytes can be read raw.
type ImageImportStreamer interface {
	ImageImporter
	ImportStream(ctx context.Context) (io.Reader, string, error)
}

// ImageUnpacker is a destination that asks for its images to be unpacked
// into snapshotters.
type ImageUnpacker interface {
	UnpackPlatforms() []UnpackConfiguration
}

// UnpackConfiguration is one platform to unpack and the snapshotter to
// unpack it into.
type UnpackConfiguration struct {
	Platform    ocispec.Platform
	Snapshotter string
}

// Progress is one report of a transfer's progress.
type Progress struct {
	// Event names what happened: "resolving", "resolved", "waiting",
	// "downloading", "complete", "already exists", "unpacking",
	// "pushing", "saved", "extracting", "Completed pull from ..."...
	Event    string
	Name     string // the reference or descriptor the event is about
	Parents  []string
	Progress int64 // bytes done
	Total    int64 // bytes in all
	Desc     *ocispec.Descriptor
}

// ProgressFunc receives progress reports.
type ProgressFunc func(Progress)

// Config holds the options of a Transfer.
type Config struct {
	Progress ProgressFunc
}

// Opt sets a Config field.
type Opt func(*Config)

// WithProgress sends progress reports to f.
func WithProgress(f ProgressFunc) Opt {
	return func(c *Config) { c.Progress = f }
}
