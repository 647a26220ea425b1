// Package archive imports and exports images as tar archives: the OCI
// image layout, with Docker's manifest.json beside it so that `docker load`
// reads what we export, and Docker's `docker save` format on import.
package archive

import (
	"context"
	"fmt"
	"maps"

	"github.com/containerd/platforms"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/reference"
	"github.com/llitfkitfk/containerd/reference/docker"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImportOpt configures ImportIndex.
type ImportOpt func(*importOptions) error

type importOptions struct {
	compress bool
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
	return func(ctx context.Context, o *exportOptions) error {
		img, err := is.Get(ctx, name)
		if err != nil {
			return err
		}
		o.manifests = append(o.manifests, named(img.Target, img.Name))
		return nil
	}
}

// WithImages exports imgs.
func WithImages(imgs []images.Image) ExportOpt {
	return func(_ context.Context, o *exportOptions) error {
		for _, img := range imgs {
			o.manifests = append(o.manifests, named(img.Target, img.Name))
		}
		return nil
	}
}

// WithManifest exports desc under names (none: unnamed, or named by the
// annotations desc already carries).
func WithManifest(desc ocispec.Descriptor, names ...string) ExportOpt {
	return func(_ context.Context, o *exportOptions) error {
		if len(names) == 0 {
			o.manifests = append(o.manifests, desc)
		}
		for _, name := range names {
			o.manifests = append(o.manifests, named(desc, name))
		}
		return nil
	}
}

// named returns desc annotated with name.
func named(desc ocispec.Descriptor, name string) ocispec.Descriptor {
	desc.Annotations = nameAnnotations(name, desc.Annotations)
	return desc
}

// nameAnnotations returns base (not changed) plus the annotations naming
// an image name: containerd's, with the full name, and the OCI one, with
// the tag alone (or the full name where there is no tag, as for a name
// by digest: the tag grammar could not hold it).
func nameAnnotations(name string, base map[string]string) map[string]string {
	a := make(map[string]string, len(base)+2)
	maps.Copy(a, base)
	a[AnnotationImageName] = name
	a[AnnotationRefName] = ociRefName(name)
	return a
}

func ociRefName(name string) string {
	spec, err := reference.Parse(name)
	if err != nil || spec.Object == "" || spec.Object[0] == '@' {
		return name
	}
	return spec.Object
}

// normalizeName returns a docker-style name in full:
// "busybox" is "docker.io/library/busybox:latest".
func normalizeName(name string) (string, error) {
	ref, err := docker.ParseDockerRef(name)
	if err != nil {
		return "", fmt.Errorf("image name %q: %w", name, err)
	}
	return ref.String(), nil
}

// familiarName returns the short form docker's manifest.json uses:
// "docker.io/library/busybox:latest" is "busybox:latest".
func familiarName(name string) (string, error) {
	ref, err := docker.ParseNormalized(name)
	if err != nil {
		return "", fmt.Errorf("image name %q: %w", name, err)
	}
	if ref.Digest() == "" {
		ref = ref.WithDefaultTag()
	}
	return ref.Familiar(), nil
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
