// Package archive holds the transfer objects for image archives carried
// on a client's byte stream: ImageImportStream, a tar read in (`ctr images
// import`), and ImageExportStream, a tar written out (`ctr images export`).
package archive

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/anypb"

	transfertypes "github.com/llitfkitfk/containerd/api/types/transfer"
	"github.com/llitfkitfk/containerd/archive/compression"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/images/archive"
	"github.com/llitfkitfk/containerd/streaming"
	"github.com/llitfkitfk/containerd/transfer"
	"github.com/llitfkitfk/containerd/transfer/image"
	"github.com/llitfkitfk/containerd/transfer/plugins"
	tstreaming "github.com/llitfkitfk/containerd/transfer/streaming"
)

func init() {
	plugins.Register(&transfertypes.ImageImportStream{}, &ImageImportStream{})
	plugins.Register(&transfertypes.ImageExportStream{}, &ImageExportStream{})
}

var (
	_ transfer.ImageImportStreamer = (*ImageImportStream)(nil)
	_ transfer.ImageExporter       = (*ImageExportStream)(nil)
)

// ImageImportStream is an archive read from a stream.
type ImageImportStream struct {
	stream        io.Reader
	mediaType     string
	forceCompress bool
}

// NewImageImportStream returns an import of the archive r yields;
// mediaType "" means a tar, compressed or not.
func NewImageImportStream(r io.Reader, mediaType string, opts ...ImportOpt) *ImageImportStream {
	iis := &ImageImportStream{stream: r, mediaType: mediaType}
	for _, o := range opts {
		o(iis)
	}
	return iis
}

func (iis *ImageImportStream) String() string { return "image archive stream" }

// ForceCompress reports whether the client asked for uncompressed layers
// to be stored compressed.
func (iis *ImageImportStream) ForceCompress() bool { return iis.forceCompress }

// ImportStream returns the raw bytes and their media type.
func (iis *ImageImportStream) ImportStream(context.Context) (io.Reader, string, error) {
	return iis.stream, iis.mediaType, nil
}

// Import reads the archive into store and returns the index describing
// its images. A stream of no declared media type may be compressed.
// With force_compress, the uncompressed layers of a docker save archive
// are stored gzipped.
func (iis *ImageImportStream) Import(ctx context.Context, store content.Store) (ocispec.Descriptor, error) {
	r := iis.stream
	if iis.mediaType == "" {
		d, err := compression.DecompressStream(r)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("image archive: %w", err)
		}
		defer d.Close()
		r = d
	}
	var opts []archive.ImportOpt
	if iis.forceCompress {
		opts = append(opts, archive.WithImportCompression())
	}
	return archive.ImportIndex(ctx, store, r, opts...)
}

// UnmarshalAny reads a containerd.types.transfer.ImageImportStream; the
// stream it names must be open, and is read from as the import needs.
func (iis *ImageImportStream) UnmarshalAny(ctx context.Context, sg streaming.StreamGetter, a *anypb.Any) error {
	var m transfertypes.ImageImportStream
	if err := a.UnmarshalTo(&m); err != nil {
		return fmt.Errorf("ImageImportStream: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	s, err := getStream(ctx, sg, m.GetStream())
	if err != nil {
		return fmt.Errorf("ImageImportStream: %w", err)
	}
	*iis = ImageImportStream{
		stream:        tstreaming.NewReader(ctx, s),
		mediaType:     m.GetMediaType(),
		forceCompress: m.GetForceCompress(),
	}
	return nil
}

// ImageExportStream is an archive written to a stream.
type ImageExportStream struct {
	stream                    io.WriteCloser
	mediaType                 string
	platforms                 []ocispec.Platform
	allPlatforms              bool
	skipCompatibilityManifest bool
	skipNonDistributable      bool

	// received is the client's copy of the archive from the daemon,
	// started by MarshalAny (marshal.go).
	received *receivedArchive
}

// NewImageExportStream returns an export to w; Export closes w.
func NewImageExportStream(w io.WriteCloser, mediaType string, opts ...ExportOpt) *ImageExportStream {
	ies := &ImageExportStream{stream: w, mediaType: mediaType}
	for _, o := range opts {
		o(ies)
	}
	return ies
}

func (ies *ImageExportStream) String() string { return "image archive stream" }

// ExportStream returns the writer and the media type asked for.
func (ies *ImageExportStream) ExportStream(context.Context) (io.WriteCloser, string, error) {
	return ies.stream, ies.mediaType, nil
}

// Export writes imgs and their content from cs as an archive and then
// closes the stream, which tells the client the archive is complete. The
// platforms exported are those asked for, else the daemon's own; all of
// an index's with all_platforms.
//
// skip_non_distributable is not passed on: images/archive has no option
// for it yet.
func (ies *ImageExportStream) Export(ctx context.Context, cs content.Store, imgs []images.Image) error {
	opts := []archive.ExportOpt{archive.WithImages(imgs)}
	if len(ies.platforms) > 0 {
		opts = append(opts, archive.WithPlatform(images.OnlyPlatforms(ies.platforms...)))
	} else {
		opts = append(opts, archive.WithPlatform(platforms.DefaultStrict()))
	}
	if ies.allPlatforms {
		opts = append(opts, archive.WithAllPlatforms())
	}
	if ies.skipCompatibilityManifest {
		opts = append(opts, archive.WithSkipDockerManifest())
	}
	err := archive.Export(ctx, cs, ies.stream, opts...)
	if cerr := ies.stream.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("image archive: close stream: %w", cerr)
	}
	return err
}

// UnmarshalAny reads a containerd.types.transfer.ImageExportStream; the
// stream it names must be open.
func (ies *ImageExportStream) UnmarshalAny(ctx context.Context, sg streaming.StreamGetter, a *anypb.Any) error {
	var m transfertypes.ImageExportStream
	if err := a.UnmarshalTo(&m); err != nil {
		return fmt.Errorf("ImageExportStream: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	s, err := getStream(ctx, sg, m.GetStream())
	if err != nil {
		return fmt.Errorf("ImageExportStream: %w", err)
	}
	*ies = ImageExportStream{
		stream:                    tstreaming.NewWriter(ctx, s),
		mediaType:                 m.GetMediaType(),
		platforms:                 image.PlatformsFromProto(m.GetPlatforms()),
		allPlatforms:              m.GetAllPlatforms(),
		skipCompatibilityManifest: m.GetSkipCompatibilityManifest(),
		skipNonDistributable:      m.GetSkipNonDistributable(),
	}
	return nil
}

func getStream(ctx context.Context, sg streaming.StreamGetter, id string) (streaming.Stream, error) {
	if id == "" {
		return nil, fmt.Errorf("stream id is required: %w", errdefs.ErrInvalidArgument)
	}
	return sg.Get(ctx, id)
}
