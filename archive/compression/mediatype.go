package compression

import (
	"fmt"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/errdefs"
)

// Layer media types. The OCI ones are re-exported from image-spec so that
// callers need one import; the Docker ones come from the Docker image
// manifest v2 schema 2.
const (
	MediaTypeImageLayer     = ocispec.MediaTypeImageLayer
	MediaTypeImageLayerGzip = ocispec.MediaTypeImageLayerGzip
	MediaTypeImageLayerZstd = ocispec.MediaTypeImageLayerZstd

	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

	// Non-distributable layers, deprecated by image-spec 1.1 but still
	// found in the wild.
	MediaTypeImageLayerNonDistributable     = "application/vnd.oci.image.layer.nondistributable.v1.tar"
	MediaTypeImageLayerNonDistributableGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
	MediaTypeImageLayerNonDistributableZstd = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
)

// FromMediaType returns the compression of a layer of media type mt. A
// media type that is not a tar layer, or whose compression this package
// cannot decode, is NotImplemented.
//
// Suffixes after the algorithm, such as "+encrypted", are not understood
// and make the type unknown: they need a processor this package lacks.
func FromMediaType(mt string) (Compression, error) {
	switch mt {
	case MediaTypeImageLayer, MediaTypeDockerLayer, MediaTypeImageLayerNonDistributable:
		return Uncompressed, nil
	case MediaTypeImageLayerGzip, MediaTypeDockerLayerGzip, MediaTypeDockerForeignLayer,
		MediaTypeImageLayerNonDistributableGzip:
		return Gzip, nil
	case MediaTypeImageLayerZstd, MediaTypeImageLayerNonDistributableZstd:
		return Zstd, nil
	}
	// Docker's layer types have used a few spellings of the same thing;
	// accept any "...diff.tar[.gzip|.zstd]" rather than list them.
	if strings.HasPrefix(mt, "application/vnd.docker.image.rootfs.") {
		switch {
		case strings.HasSuffix(mt, ".tar"):
			return Uncompressed, nil
		case strings.HasSuffix(mt, ".tar.gzip"):
			return Gzip, nil
		case strings.HasSuffix(mt, ".tar.zstd"):
			return Zstd, nil
		}
	}
	return Unknown, fmt.Errorf("layer media type %q: %w", mt, errdefs.ErrNotImplemented)
}

// MediaType returns the OCI layer media type for a layer compressed with c.
func MediaType(c Compression) (string, error) {
	switch c {
	case Uncompressed:
		return MediaTypeImageLayer, nil
	case Gzip:
		return MediaTypeImageLayerGzip, nil
	case Zstd:
		return MediaTypeImageLayerZstd, nil
	}
	return "", fmt.Errorf("compression %v: %w", c, errdefs.ErrNotImplemented)
}
