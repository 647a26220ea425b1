// Package archive imports and exports images as tar archives: the OCI
// image layout, with Docker's manifest.json beside it so that `docker load`
// reads what we export, and Docker's `docker save` format on import.
package archive

import (
	"context"
	"io"

	"github.com/containerd/platforms"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/images"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImportOpt configures ImportIndex.
type ImportOpt func(*importOptions) error

type importOptions struct {
	compress bool
}

// ImportIndex reads an archive from r into store and returns the
// descriptor of an index (itself written to store) listing the archive's
// images: each manifest or index carries the annotations
// io.containerd.image.name (the full name, when the archive names one) and
// org.opencontainers.image.ref.name. Every blob is verified against its
// digest; a hostile archive (paths escaping, links, oversize entries,
// wrong digests) is refused without writing anything visible.
func ImportIndex(ctx context.Context, store content.Store, r io.Reader, opts ...ImportOpt) (ocispec.Descriptor, error) {
	panic("archive.ImportIndex: not yet implemented")
}

// ExportOpt configures Export.
type ExportOpt func(context.Context, *exportOptions) error

type exportOptions struct {
	manifests          []ocispec.Descriptor
	platform           platforms.MatchComparer
	allPlatforms       bool
	skipDockerManifest bool
	skipMissing        bool
}

// WithImage exports the image name from is.
func WithImage(is images.Store, name string) ExportOpt {
	panic("archive.WithImage: not yet implemented")
}

// WithImages exports imgs.
func WithImages(imgs []images.Image) ExportOpt {
	panic("archive.WithImages: not yet implemented")
}

// WithManifest exports desc under names (none: unnamed).
func WithManifest(desc ocispec.Descriptor, names ...string) ExportOpt {
	panic("archive.WithManifest: not yet implemented")
}

// WithPlatform exports, of an index, only the manifests platform matches.
func WithPlatform(platform platforms.MatchComparer) ExportOpt {
	return func(_ context.Context, o *exportOptions) error { o.platform = platform; return nil }
}

// WithAllPlatforms exports every manifest of an index.
func WithAllPlatforms() ExportOpt {
	return func(_ context.Context, o *exportOptions) error { o.allPlatforms = true; return nil }
}

// WithSkipDockerManifest leaves Docker's manifest.json out.
func WithSkipDockerManifest() ExportOpt {
	return func(_ context.Context, o *exportOptions) error { o.skipDockerManifest = true; return nil }
}

// WithSkipMissing leaves out manifests whose content is not in the store
// instead of failing.
func WithSkipMissing() ExportOpt {
	return func(_ context.Context, o *exportOptions) error { o.skipMissing = true; return nil }
}

// Export writes the selected images and their content from store to w as
// a tar archive in the OCI image layout.
func Export(ctx context.Context, store content.Provider, w io.Writer, opts ...ExportOpt) error {
	panic("archive.Export: not yet implemented")
}
