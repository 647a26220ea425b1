package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/images/archive"
)

// annotationManifestSubject marks an index entry that is a referrer of
// another manifest (a signature, an attestation): it gets no digest name
// of its own.
const annotationManifestSubject = "io.containerd.manifest.subject"

// WithImageRefTranslator maps the OCI ref names of the archive's index
// (the tag alone, usually) to image names; archive.AddRefPrefix and
// archive.FilterRefPrefix are the usual ones. A name it maps to "" is
// not recorded.
func WithImageRefTranslator(f func(string) string) ImportOpt {
	return func(c *ImportConfig) error { c.ImageRefTranslator = f; return nil }
}

// WithDigestRef also names each manifest of the archive's index f(its
// digest), unless f returns "".
func WithDigestRef(f func(digest.Digest) string) ImportOpt {
	return func(c *ImportConfig) error { c.DigestRef = f; return nil }
}

// WithSkipDigestRef skips the digest name of the manifests f says to,
// given the manifest's image name ("" if it has none).
func WithSkipDigestRef(f func(string) bool) ImportOpt {
	return func(c *ImportConfig) error { c.SkipDigestRef = f; return nil }
}

// WithIndexName also records the archive's index itself under name.
func WithIndexName(name string) ImportOpt {
	return func(c *ImportConfig) error { c.IndexName = name; return nil }
}

// WithAllPlatforms keeps the content of every platform of the archive,
// not only the client's.
func WithAllPlatforms(all bool) ImportOpt {
	return func(c *ImportConfig) error { c.AllPlatforms = all; return nil }
}

// WithImportPlatform chooses the platforms whose content is kept.
func WithImportPlatform(m platforms.MatchComparer) ImportOpt {
	return func(c *ImportConfig) error { c.PlatformMatcher = m; return nil }
}

// WithImportCompression gzips the uncompressed layers of a `docker save`
// archive as they are imported.
func WithImportCompression() ImportOpt {
	return func(c *ImportConfig) error { c.Compress = true; return nil }
}

// WithImageLabels sets the labels of the images the import records.
func WithImageLabels(labels map[string]string) ImportOpt {
	return func(c *ImportConfig) error { c.Labels = labels; return nil }
}

// WithSkipMissing accepts an archive that lacks some of the blobs its
// manifests name (an export of another platform's image, say).
func WithSkipMissing() ImportOpt {
	return func(c *ImportConfig) error { c.SkipMissing = true; return nil }
}

// WithDiscardUnpackedLayers lets the collector take the imported layers
// once nothing else holds them: after an unpack, their snapshots are
// what is needed.
func WithDiscardUnpackedLayers() ImportOpt {
	return func(c *ImportConfig) error { c.DiscardLayers = true; return nil }
}

// importArchive is Import: the archive's blobs go into the content store
// under a lease (the caller's, or one for the call) and its index's
// entries become images, named as containerd's client names them:
//
//   - IndexName, if set, names the index itself;
//   - an entry's io.containerd.image.name annotation names it as it is,
//     else its org.opencontainers.image.ref.name through
//     ImageRefTranslator (none: as it is);
//   - DigestRef names it after its digest too, unless SkipDigestRef says
//     otherwise or it is a referrer of another manifest.
//
// Of the content, only the manifests of the chosen platforms (and what
// they reference, which must all be in the archive) are kept by labels
// from the index; the rest goes with the lease. An archive with nothing for those platforms is NotFound.
// An existing image of the same name is pointed at the new target.
// Unpacking is the caller's (Image.Unpack).
func (c *Client) importArchive(ctx context.Context, r io.Reader, opts ...ImportOpt) ([]images.Image, error) {
	var cfg ImportConfig
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	ctx, done, err := c.WithLease(ctx)
	if err != nil {
		return nil, err
	}
	defer done(context.WithoutCancel(ctx))
	return importInto(ctx, c.ContentStore(), c.ImageService(), r, cfg)
}

// importInto is Import into cs and is, under the caller's lease.
func importInto(ctx context.Context, cs content.Store, is images.Store, r io.Reader, cfg ImportConfig) ([]images.Image, error) {
	var aopts []archive.ImportOpt
	if cfg.Compress {
		aopts = append(aopts, archive.WithImportCompression())
	}
	index, err := archive.ImportIndex(ctx, cs, r, aopts...)
	if err != nil {
		return nil, err
	}

	var imgs []images.Image
	if cfg.IndexName != "" {
		imgs = append(imgs, images.Image{Name: cfg.IndexName, Target: index})
	}
	match := cfg.PlatformMatcher
	switch {
	case cfg.AllPlatforms:
		match = platforms.All
	case match == nil:
		match = defaultPlatform()
	}

	top := images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if desc.Digest != index.Digest {
			if !images.IsIndexType(desc.MediaType) && !images.IsManifestType(desc.MediaType) {
				// Children reads manifests and indexes, which proves
				// them there; the rest must be checked, or an image
				// would be recorded that cannot be unpacked.
				if _, err := cs.Info(ctx, desc.Digest); err != nil {
					if cfg.SkipMissing && errdefs.IsNotFound(err) {
						return nil, images.ErrSkipDesc
					}
					return nil, fmt.Errorf("the archive lacks %s %s: %w", desc.MediaType, desc.Digest, err)
				}
			}
			children, err := images.Children(ctx, cs, desc)
			if cfg.SkipMissing && errdefs.IsNotFound(err) {
				return nil, images.ErrSkipDesc
			}
			return children, err
		}
		idx, err := readIndex(ctx, cs, desc)
		if err != nil {
			return nil, err
		}
		for _, m := range idx.Manifests {
			imgs = append(imgs, importNames(m, cfg)...)
		}
		return idx.Manifests, nil
	})
	var labelMap func(ocispec.Descriptor) []string
	if cfg.DiscardLayers {
		labelMap = func(d ocispec.Descriptor) []string {
			if images.IsLayerType(d.MediaType) {
				return nil
			}
			return images.ChildGCLabels(d)
		}
	}
	handler := images.SetChildrenMappedLabels(cs, images.FilterPlatforms(top, match), labelMap)
	found := false
	err = images.Walk(ctx, images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := handler(ctx, desc)
		if len(children) > 0 {
			found = true
		}
		return children, err
	}), index)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if !found {
		return nil, fmt.Errorf("import: the archive has no image for %s: %w", images.PlatformString(match), errdefs.ErrNotFound)
	}

	for n := range imgs {
		fields := []string{"target"}
		if cfg.Labels != nil {
			imgs[n].Labels = cfg.Labels
			fields = append(fields, "labels")
		}
		img, err := is.Update(ctx, imgs[n], fields...)
		if errdefs.IsNotFound(err) {
			img, err = is.Create(ctx, imgs[n])
		}
		if err != nil {
			return nil, fmt.Errorf("import: image %s: %w", imgs[n].Name, err)
		}
		imgs[n] = img
	}
	return imgs, nil
}

// importNames returns the images an index entry m makes under cfg.
func importNames(m ocispec.Descriptor, cfg ImportConfig) []images.Image {
	var out []images.Image
	name := m.Annotations[archive.AnnotationImageName]
	if name == "" {
		name = m.Annotations[archive.AnnotationRefName]
		if name != "" && cfg.ImageRefTranslator != nil {
			name = cfg.ImageRefTranslator(name)
		}
	}
	if name != "" {
		out = append(out, images.Image{Name: name, Target: m})
	}
	if _, ok := m.Annotations[annotationManifestSubject]; ok {
		return out
	}
	if cfg.SkipDigestRef != nil && cfg.SkipDigestRef(name) {
		return out
	}
	if cfg.DigestRef != nil {
		if ref := cfg.DigestRef(m.Digest); ref != "" {
			out = append(out, images.Image{Name: ref, Target: m})
		}
	}
	return out
}

// maxIndexJSON bounds an index read into memory.
const maxIndexJSON = 8 << 20

// readIndex reads the index desc names.
func readIndex(ctx context.Context, provider content.Provider, desc ocispec.Descriptor) (ocispec.Index, error) {
	var idx ocispec.Index
	if desc.Size > maxIndexJSON {
		return idx, fmt.Errorf("index %s: %d bytes is over the %d allowed: %w", desc.Digest, desc.Size, maxIndexJSON, errdefs.ErrInvalidArgument)
	}
	p, err := content.ReadBlob(ctx, provider, desc)
	if err != nil {
		return idx, err
	}
	if err := json.Unmarshal(p, &idx); err != nil {
		return idx, fmt.Errorf("index %s: %w", desc.Digest, err)
	}
	return idx, nil
}
