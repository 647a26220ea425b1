// Package image is the ImageStore transfer object: the daemon's image
// store as a destination (a pull or import names the images to create) or
// a source (a push, export or tag names the images to read).
package image

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/api/types"
	transfertypes "github.com/llitfkitfk/containerd/api/types/transfer"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/images/archive"
	"github.com/llitfkitfk/containerd/streaming"
	"github.com/llitfkitfk/containerd/transfer"
	"github.com/llitfkitfk/containerd/transfer/plugins"
)

func init() {
	plugins.Register(&transfertypes.ImageStore{}, &Store{})
}

var (
	_ transfer.ImageStorer   = (*Store)(nil)
	_ transfer.ImageGetter   = (*Store)(nil)
	_ transfer.ImageLookup   = (*Store)(nil)
	_ transfer.ImageUnpacker = (*Store)(nil)
	_ transfer.ImageFilterer = (*Store)(nil)
)

const (
	// AnnotationRefSource, set by an import on the descriptors it stores,
	// says where their names come from: "annotation" is the only source
	// known, the names above.
	AnnotationRefSource = "io.containerd.import.ref-source"

	labelGCBrefImage = "containerd.io/gc.bref.image"
	labelGCExpire    = "containerd.io/gc.expire"
)

// Reference is a further name to store or look up an image under.
type Reference struct {
	Name string
	// IsPrefix: Name is a repository; stored names get a tag (from the
	// archive) or a digest added. Looking up by prefix is not supported.
	IsPrefix bool
	// AllowOverwrite lets a full name found in the archive that is not
	// under the prefix be used as it is.
	AllowOverwrite bool
	// AddDigest also stores Name@<digest>.
	AddDigest bool
	// SkipNamedDigest leaves the digest name out when a named one was
	// found in the archive.
	SkipNamedDigest bool
}

// Store is the image store as a transfer source or destination.
type Store struct {
	imageName       string
	imageLabels     map[string]string
	platforms       []ocispec.Platform
	allMetadata     bool
	manifestLimit   int
	extraReferences []Reference
	unpacks         []transfer.UnpackConfiguration
}

// NewStore returns a Store for image name, with the options of a client
// naming it in a transfer (see marshal.go).
func NewStore(name string, opts ...StoreOpt) *Store {
	s := &Store{imageName: name}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (s *Store) String() string { return fmt.Sprintf("local image store (%s)", s.imageName) }

// Name is the image name.
func (s *Store) Name() string { return s.imageName }

// Labels are the labels new images get.
func (s *Store) Labels() map[string]string { return s.imageLabels }

// ExtraReferences are the further names.
func (s *Store) ExtraReferences() []Reference { return s.extraReferences }

// Platforms are the platforms to fetch; none means all.
func (s *Store) Platforms() []ocispec.Platform { return s.platforms }

// UnpackPlatforms are the platforms to unpack and their snapshotters.
func (s *Store) UnpackPlatforms() []transfer.UnpackConfiguration {
	return append([]transfer.UnpackConfiguration(nil), s.unpacks...)
}

// ImageFilter wraps h, the handler walking an image being fetched, to
// label parents with their children for the collector and to keep only
// the selected platforms: with all_metadata, the manifests and configs of
// every platform and the layers of the selected ones; with a manifest
// limit, only that many manifests of an index, best first.
func (s *Store) ImageFilter(h images.HandlerFunc, cs content.Store) images.HandlerFunc {
	var p platforms.MatchComparer = platforms.All
	if len(s.platforms) > 0 {
		p = platforms.Ordered(s.platforms...)
	}
	h = images.SetChildrenLabels(cs, h)
	if s.allMetadata {
		h = filterLayersByPlatform(h, p)
	} else {
		h = images.FilterPlatforms(h, p)
	}
	if s.manifestLimit > 0 {
		h = images.LimitManifests(h, p, s.manifestLimit)
	}
	return h
}

// filterLayersByPlatform keeps, of a manifest for a platform m does not
// match, only the config.
func filterLayersByPlatform(f images.HandlerFunc, m platforms.Matcher) images.HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := f(ctx, desc)
		if err != nil || desc.Platform == nil || !images.IsManifestType(desc.MediaType) || m.Match(*desc.Platform) {
			return children, err
		}
		var configs []ocispec.Descriptor
		for _, c := range children {
			if images.IsConfigType(c.MediaType) {
				configs = append(configs, c)
			}
		}
		return configs, nil
	}
}

// Store records desc under the names asked for, creating each image or
// updating it if it exists, and returns the records.
//
// A descriptor from an import (annotated with AnnotationRefSource) is
// named from its own annotations through the prefix references: a full
// name under the prefix is used as it is, a tag is added to the prefix,
// and with AddDigest prefix@digest is stored too. Otherwise the image
// name, the full extra references and prefix@digest are stored. Extra
// names of an image that has a name are labelled to be collected with it.
func (s *Store) Store(ctx context.Context, desc ocispec.Descriptor, store images.Store) ([]images.Image, error) {
	extraLabels := func() map[string]string {
		if s.imageName == "" {
			return s.imageLabels
		}
		labels := make(map[string]string, len(s.imageLabels)+2)
		maps.Copy(labels, s.imageLabels)
		labels[labelGCBrefImage] = s.imageName
		labels[labelGCExpire] = time.Now().Format(time.RFC3339)
		return labels
	}

	var imgs []images.Image
	add := func(name string, labels map[string]string) {
		imgs = append(imgs, images.Image{Name: name, Target: desc, Labels: labels})
	}
	if source, ok := desc.Annotations[AnnotationRefSource]; ok {
		if source != "annotation" {
			return nil, fmt.Errorf("image reference source %q not supported: %w", source, errdefs.ErrInvalidArgument)
		}
		// The marker is for us, not for the stored target.
		annotations := maps.Clone(desc.Annotations)
		delete(annotations, AnnotationRefSource)
		desc.Annotations = annotations
		for _, ref := range s.extraReferences {
			if !ref.IsPrefix {
				continue
			}
			name := nameFromAnnotations(desc.Annotations, ref.Name, !ref.AllowOverwrite)
			if name != "" {
				add(name, extraLabels())
			}
			if ref.AddDigest && (name == "" || !ref.SkipNamedDigest) {
				add(ref.Name+"@"+desc.Digest.String(), extraLabels())
			}
		}
	} else {
		if s.imageName != "" {
			add(s.imageName, s.imageLabels)
		}
		for _, ref := range s.extraReferences {
			switch {
			case ref.IsPrefix && ref.AddDigest:
				add(ref.Name+"@"+desc.Digest.String(), extraLabels())
			case !ref.IsPrefix:
				add(ref.Name, extraLabels())
			}
		}
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("no name to store image %s under: %w", desc.Digest, errdefs.ErrNotFound)
	}

	for i := 0; i < len(imgs); {
		img, err := store.Create(ctx, imgs[i])
		if errdefs.IsAlreadyExists(err) {
			img, err = store.Update(ctx, imgs[i])
			if errdefs.IsNotFound(err) {
				continue // deleted meanwhile: create it again
			}
		}
		if err != nil {
			return nil, err
		}
		imgs[i] = img
		i++
	}
	return imgs, nil
}

// nameFromAnnotations returns the name an archive gives a manifest, read
// against prefix: a tag is appended to it; a full name is used as it is,
// only if it is under prefix when strict. "" when none fits.
func nameFromAnnotations(annotations map[string]string, prefix string, strict bool) string {
	if strict {
		return archive.ImageName(annotations, archive.FilterRefPrefix(prefix))
	}
	return archive.ImageName(annotations, archive.AddRefPrefix(prefix))
}

// Get returns the image named.
func (s *Store) Get(ctx context.Context, store images.Store) (images.Image, error) {
	if s.imageName == "" {
		return images.Image{}, fmt.Errorf("image name is required: %w", errdefs.ErrInvalidArgument)
	}
	return store.Get(ctx, s.imageName)
}

// Lookup returns the image named and those of the full extra references.
func (s *Store) Lookup(ctx context.Context, store images.Store) ([]images.Image, error) {
	var imgs []images.Image
	if s.imageName != "" {
		img, err := store.Get(ctx, s.imageName)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	for _, ref := range s.extraReferences {
		if ref.IsPrefix {
			return nil, fmt.Errorf("looking images up by prefix (%s): %w", ref.Name, errdefs.ErrNotImplemented)
		}
		img, err := store.Get(ctx, ref.Name)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("no image named: %w", errdefs.ErrInvalidArgument)
	}
	return imgs, nil
}

// UnmarshalAny reads a containerd.types.transfer.ImageStore.
func (s *Store) UnmarshalAny(_ context.Context, _ streaming.StreamGetter, a *anypb.Any) error {
	var m transfertypes.ImageStore
	if err := a.UnmarshalTo(&m); err != nil {
		return fmt.Errorf("ImageStore: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	*s = Store{
		imageName:     m.GetName(),
		imageLabels:   m.GetLabels(),
		platforms:     PlatformsFromProto(m.GetPlatforms()),
		allMetadata:   m.GetAllMetadata(),
		manifestLimit: int(min(m.GetManifestLimit(), 1<<20)),
	}
	for _, r := range m.GetExtraReferences() {
		if r.GetName() == "" {
			return fmt.Errorf("ImageStore: extra reference without a name: %w", errdefs.ErrInvalidArgument)
		}
		s.extraReferences = append(s.extraReferences, Reference{
			Name:            r.GetName(),
			IsPrefix:        r.GetIsPrefix(),
			AllowOverwrite:  r.GetAllowOverwrite(),
			AddDigest:       r.GetAddDigest(),
			SkipNamedDigest: r.GetSkipNamedDigest(),
		})
	}
	for _, u := range m.GetUnpacks() {
		var p ocispec.Platform
		if u.GetPlatform() != nil {
			p = PlatformsFromProto([]*types.Platform{u.GetPlatform()})[0]
		}
		s.unpacks = append(s.unpacks, transfer.UnpackConfiguration{Platform: p, Snapshotter: u.GetSnapshotter()})
	}
	return nil
}

// PlatformsFromProto converts wire platforms, in order.
func PlatformsFromProto(ps []*types.Platform) []ocispec.Platform {
	if len(ps) == 0 {
		return nil
	}
	out := make([]ocispec.Platform, len(ps))
	for i, p := range ps {
		out[i] = ocispec.Platform{
			OS:           p.GetOs(),
			Architecture: p.GetArchitecture(),
			Variant:      p.GetVariant(),
			OSVersion:    p.GetOsVersion(),
			OSFeatures:   p.GetOsFeatures(),
		}
	}
	return out
}
