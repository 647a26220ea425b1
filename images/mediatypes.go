package images

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containerd/platforms"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker's media types, which registries and archives still carry beside
// the OCI ones.
const (
	MediaTypeDockerSchema2Layer            = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerSchema2LayerGzip        = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerSchema2LayerForeign     = "application/vnd.docker.image.rootfs.foreign.diff.tar"
	MediaTypeDockerSchema2LayerForeignGzip = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	MediaTypeDockerSchema2Config           = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerSchema2Manifest         = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerSchema2ManifestList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	// MediaTypeDockerSchema1Manifest is refused: schema 1 is long gone.
	MediaTypeDockerSchema1Manifest = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// Label keys images' content and snapshots carry.
const (
	// LabelUncompressed on a layer blob names its uncompressed digest.
	LabelUncompressed = "containerd.io/uncompressed"
	// LabelDistributionSource, with ".<registry host>" appended, names the
	// repositories a blob came from, for cross-repository mounts.
	LabelDistributionSource = "containerd.io/distribution.source"
)

// IsIndexType reports whether mt is an index (OCI or Docker list).
func IsIndexType(mt string) bool {
	switch mt {
	case ocispec.MediaTypeImageIndex, MediaTypeDockerSchema2ManifestList:
		return true
	}
	return false
}

// IsManifestType reports whether mt is an image manifest (OCI or Docker).
func IsManifestType(mt string) bool {
	switch mt {
	case ocispec.MediaTypeImageManifest, MediaTypeDockerSchema2Manifest:
		return true
	}
	return false
}

// IsConfigType reports whether mt is an image config.
func IsConfigType(mt string) bool {
	switch mt {
	case ocispec.MediaTypeImageConfig, MediaTypeDockerSchema2Config:
		return true
	}
	return false
}

// IsLayerType reports whether mt is a layer (any compression, foreign or
// not, OCI or Docker).
func IsLayerType(mt string) bool {
	// OCI layer types are a base plus a compression suffix
	// ("+gzip", "+zstd", "+encrypted"...); the base decides.
	if base, _, ok := strings.Cut(mt, "+"); ok {
		mt = base
	}
	switch mt {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerNonDistributable, //nolint:staticcheck // still in archives
		MediaTypeDockerSchema2Layer, MediaTypeDockerSchema2LayerGzip,
		MediaTypeDockerSchema2LayerForeign, MediaTypeDockerSchema2LayerForeignGzip:
		return true
	}
	return false
}

// Children returns the descriptors desc references: an index's manifests,
// a manifest's config and layers; none for other types.
func Children(ctx context.Context, provider content.Provider, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	var children []ocispec.Descriptor
	switch {
	case IsManifestType(desc.MediaType):
		var m ocispec.Manifest
		if err := readJSON(ctx, provider, desc, &m); err != nil {
			return nil, err
		}
		children = append(children, m.Config)
		children = append(children, m.Layers...)
	case IsIndexType(desc.MediaType):
		var idx ocispec.Index
		if err := readJSON(ctx, provider, desc, &idx); err != nil {
			return nil, err
		}
		children = append(children, idx.Manifests...)
	case desc.MediaType == MediaTypeDockerSchema1Manifest:
		return nil, fmt.Errorf("%s: docker schema 1 manifests are not supported: %w", desc.Digest, errdefs.ErrNotImplemented)
	}
	return children, nil
}

// ChildrenHandler is a handler returning Children.
func ChildrenHandler(provider content.Provider) HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		return Children(ctx, provider, desc)
	}
}

// SetChildrenLabels wraps f: on content with children, it sets the
// containerd.io/gc.ref.content.* labels naming them, so that the collector
// keeps them while the parent lives.
func SetChildrenLabels(manager content.Manager, f HandlerFunc) HandlerFunc {
	panic("images.SetChildrenLabels: not yet implemented")
}

// FilterPlatforms wraps f: of an index's manifests, only those whose
// platform m matches (and those with no platform) are returned.
func FilterPlatforms(f HandlerFunc, m platforms.Matcher) HandlerFunc {
	panic("images.FilterPlatforms: not yet implemented")
}

// LimitManifests wraps f: of an index's manifests, only the n that m
// ranks best are returned (n <= 0: all that match, best first).
func LimitManifests(f HandlerFunc, m platforms.MatchComparer, n int) HandlerFunc {
	panic("images.LimitManifests: not yet implemented")
}

// Manifest returns the manifest image names for platform: image itself if
// it is a manifest, else the best match from its index (recursively).
// NotFound names the platform when none matches.
func Manifest(ctx context.Context, provider content.Provider, image ocispec.Descriptor, platform platforms.MatchComparer) (ocispec.Manifest, error) {
	panic("images.Manifest: not yet implemented")
}

// Config returns the descriptor of the config of image's manifest for
// platform.
func Config(ctx context.Context, provider content.Provider, image ocispec.Descriptor, platform platforms.MatchComparer) (ocispec.Descriptor, error) {
	panic("images.Config: not yet implemented")
}

// RootFS returns the diff IDs of the image config configDesc names.
func RootFS(ctx context.Context, provider content.Provider, configDesc ocispec.Descriptor) ([]digest.Digest, error) {
	panic("images.RootFS: not yet implemented")
}

// Platforms returns the platforms image has manifests for.
func Platforms(ctx context.Context, provider content.Provider, image ocispec.Descriptor) ([]ocispec.Platform, error) {
	panic("images.Platforms: not yet implemented")
}

// maxJSON bounds the manifests, indexes and configs read into memory: a
// registry or archive that claims a larger one is refused, not believed.
const maxJSON = 8 << 20

// readJSON reads the JSON blob desc names into v.
func readJSON(ctx context.Context, provider content.Provider, desc ocispec.Descriptor, v any) error {
	if desc.Size > maxJSON {
		return fmt.Errorf("%s %s: %d bytes is over the %d allowed: %w", desc.MediaType, desc.Digest, desc.Size, maxJSON, errdefs.ErrInvalidArgument)
	}
	b, err := content.ReadBlob(ctx, provider, desc)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s %s: %w", desc.MediaType, desc.Digest, err)
	}
	return nil
}
