package images

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
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
	//lint:ignore SA1019 deprecated, still found in images
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerNonDistributable,
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

// Garbage-collection labels: a blob carrying them keeps the blobs they
// name alive. The keys are containerd's, so that content labelled by either
// daemon (or by a client through the content service) means the same.
const (
	// LabelGCRefContent prefixes the labels naming a blob's children.
	LabelGCRefContent = "containerd.io/gc.ref.content"
)

// ChildGCLabels returns the label key prefixes that name desc as a child
// of its parent, as containerd names them: ".m." for a manifest,
// ".config" for a config, ".l." for a layer, "." for anything else (a
// nested index among them). A key ending in "." gets the child's position
// among the children sharing it appended; one that does not gets it
// appended only from the second such child on.
func ChildGCLabels(desc ocispec.Descriptor) []string {
	switch {
	case IsConfigType(desc.MediaType):
		return []string{LabelGCRefContent + ".config"}
	case IsManifestType(desc.MediaType):
		return []string{LabelGCRefContent + ".m."}
	case IsLayerType(desc.MediaType):
		return []string{LabelGCRefContent + ".l."}
	}
	return []string{LabelGCRefContent + "."}
}

// ChildrenLabels returns the labels a parent should carry for children,
// with labelMap (nil: ChildGCLabels) naming each child's keys.
func ChildrenLabels(children []ocispec.Descriptor, labelMap func(ocispec.Descriptor) []string) map[string]string {
	if labelMap == nil {
		labelMap = ChildGCLabels
	}
	labels := make(map[string]string, len(children))
	seen := map[string]int{}
	for _, ch := range children {
		for _, key := range labelMap(ch) {
			i := seen[key]
			seen[key] = i + 1
			if i > 0 || strings.HasSuffix(key, ".") {
				key += strconv.Itoa(i)
			}
			labels[key] = ch.Digest.String()
		}
	}
	return labels
}

// SetChildrenLabels wraps f: on content with children, it sets the
// containerd.io/gc.ref.content.* labels naming them, so that the collector
// keeps them while the parent lives.
func SetChildrenLabels(manager content.Manager, f HandlerFunc) HandlerFunc {
	return SetChildrenMappedLabels(manager, f, nil)
}

// SetChildrenMappedLabels is SetChildrenLabels with labelMap (nil:
// ChildGCLabels) naming each child's label keys.
func SetChildrenMappedLabels(manager content.Manager, f HandlerFunc, labelMap func(ocispec.Descriptor) []string) HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := f(ctx, desc)
		if err != nil || len(children) == 0 {
			return children, err
		}
		labels := ChildrenLabels(children, labelMap)
		if len(labels) == 0 {
			return children, nil
		}
		fields := make([]string, 0, len(labels))
		for k := range labels {
			fields = append(fields, "labels."+k)
		}
		sort.Strings(fields)
		// Only the named labels change: others the blob carries (the
		// distribution source, uncompressed digest...) stay.
		if _, err := manager.Update(ctx, content.Info{Digest: desc.Digest, Labels: labels}, fields...); err != nil {
			return nil, fmt.Errorf("label children of %s: %w", desc.Digest, err)
		}
		return children, nil
	}
}

// FilterPlatforms wraps f: of an index's manifests, only those whose
// platform m matches (and those with no platform) are returned.
func FilterPlatforms(f HandlerFunc, m platforms.Matcher) HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := f(ctx, desc)
		if err != nil || m == nil {
			return children, err
		}
		kept := children[:0:0]
		for _, ch := range children {
			if ch.Platform == nil || m.Match(*ch.Platform) {
				kept = append(kept, ch)
			}
		}
		return kept, nil
	}
}

// sortByPlatform orders descs best first by m, keeping the index order
// among equals; those without a platform go last, as the least specific.
func sortByPlatform(descs []ocispec.Descriptor, m platforms.MatchComparer) {
	sort.SliceStable(descs, func(i, j int) bool {
		pi, pj := descs[i].Platform, descs[j].Platform
		if pi == nil {
			return false
		}
		if pj == nil {
			return true
		}
		return m.Less(*pi, *pj)
	})
}

// LimitManifests wraps f: of an index's manifests, only the n that m
// ranks best are returned (n <= 0: all that match, best first).
// NotFound if n > 0 and none is left to return.
func LimitManifests(f HandlerFunc, m platforms.MatchComparer, n int) HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := f(ctx, desc)
		if err != nil || !IsIndexType(desc.MediaType) {
			return children, err
		}
		sortByPlatform(children, m)
		if n > 0 {
			if len(children) == 0 {
				return nil, fmt.Errorf("index %s: no manifest for %s: %w", desc.Digest, PlatformString(m), errdefs.ErrNotFound)
			}
			if len(children) > n {
				children = children[:n]
			}
		}
		return children, nil
	}
}

// namedComparer is a MatchComparer that can say what it wants.
type namedComparer struct {
	platforms.MatchComparer
	name string
}

func (n namedComparer) String() string { return n.name }

// OnlyPlatforms is platforms.Ordered that names its platforms in errors
// (platforms' own comparers cannot be printed).
func OnlyPlatforms(ps ...ocispec.Platform) platforms.MatchComparer {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = platforms.FormatAll(platforms.Normalize(p))
	}
	return namedComparer{platforms.Ordered(ps...), strings.Join(names, ", ")}
}

// PlatformString describes m for an error: its own words if it has them
// (OnlyPlatforms, platforms.NewMatcher), else a general phrase.
func PlatformString(m platforms.MatchComparer) string {
	if s, ok := m.(fmt.Stringer); ok {
		return "platform " + s.String()
	}
	return "the requested platform"
}

// Manifest returns the manifest image names for platform: image itself if
// it is a manifest, else the best match from its index (recursively).
// A manifest an index lists without a platform is matched by the platform
// its config declares. NotFound names the platform when none matches.
// A nil platform takes the first manifest found.
func Manifest(ctx context.Context, provider content.Provider, image ocispec.Descriptor, platform platforms.MatchComparer) (ocispec.Manifest, error) {
	m, found, err := manifest(ctx, provider, image, platform, true, 0)
	if err != nil {
		return ocispec.Manifest{}, err
	}
	if !found {
		have, _ := Platforms(ctx, provider, image)
		names := make([]string, len(have))
		for i, p := range have {
			names[i] = platforms.FormatAll(p)
		}
		return ocispec.Manifest{}, fmt.Errorf("image %s: no manifest for %s (it has: %s): %w",
			image.Digest, PlatformString(platform), strings.Join(names, ", "), errdefs.ErrNotFound)
	}
	return m, nil
}

// maxIndexDepth bounds nested indexes, so that a cycle of indexes (which
// content addressing makes hard, not impossible, to build) ends.
const maxIndexDepth = 8

// manifest finds the best manifest for platform under desc. top says desc
// is the image itself: a manifest named directly is taken whatever its
// platform, as containerd does.
func manifest(ctx context.Context, provider content.Provider, desc ocispec.Descriptor, platform platforms.MatchComparer, top bool, depth int) (ocispec.Manifest, bool, error) {
	switch {
	case IsManifestType(desc.MediaType):
		var m struct {
			ocispec.Manifest
			Manifests json.RawMessage `json:"manifests"`
		}
		if err := readJSON(ctx, provider, desc, &m); err != nil {
			return ocispec.Manifest{}, false, err
		}
		if (len(m.Manifests) > 0 && string(m.Manifests) != "null") || IsIndexType(m.MediaType) {
			return ocispec.Manifest{}, false, fmt.Errorf("manifest %s is an index: %w", desc.Digest, errdefs.ErrInvalidArgument)
		}
		if !top && platform != nil && desc.Platform == nil {
			p, err := ConfigPlatform(ctx, provider, m.Config)
			if err != nil {
				return ocispec.Manifest{}, false, err
			}
			if !platform.Match(p) {
				return ocispec.Manifest{}, false, nil
			}
		}
		return m.Manifest, true, nil
	case IsIndexType(desc.MediaType):
		if depth >= maxIndexDepth {
			return ocispec.Manifest{}, false, fmt.Errorf("index %s: indexes nested over %d deep: %w", desc.Digest, maxIndexDepth, errdefs.ErrInvalidArgument)
		}
		var idx struct {
			ocispec.Index
			Config json.RawMessage `json:"config"`
			Layers json.RawMessage `json:"layers"`
		}
		if err := readJSON(ctx, provider, desc, &idx); err != nil {
			return ocispec.Manifest{}, false, err
		}
		if (len(idx.Layers) > 0 && string(idx.Layers) != "null") || (len(idx.Config) > 0 && string(idx.Config) != "null") || IsManifestType(idx.MediaType) {
			return ocispec.Manifest{}, false, fmt.Errorf("index %s is a manifest: %w", desc.Digest, errdefs.ErrInvalidArgument)
		}
		descs := idx.Manifests
		if platform != nil {
			descs = nil
			for _, d := range idx.Manifests {
				if d.Platform == nil || platform.Match(*d.Platform) {
					descs = append(descs, d)
				}
			}
			sortByPlatform(descs, platform)
		}
		// The best first; one without a platform may turn out, by its
		// config, not to match, and then the next is tried.
		for _, d := range descs {
			m, ok, err := manifest(ctx, provider, d, platform, false, depth+1)
			if err != nil || ok {
				return m, ok, err
			}
		}
		return ocispec.Manifest{}, false, nil
	}
	return ocispec.Manifest{}, false, fmt.Errorf("%s is %q, not a manifest or index: %w", desc.Digest, desc.MediaType, errdefs.ErrNotFound)
}

// ConfigPlatform returns the platform the config configDesc names declares,
// normalised.
func ConfigPlatform(ctx context.Context, provider content.Provider, configDesc ocispec.Descriptor) (ocispec.Platform, error) {
	var p ocispec.Platform
	if err := readJSON(ctx, provider, configDesc, &p); err != nil {
		return ocispec.Platform{}, err
	}
	return platforms.Normalize(p), nil
}

// Config returns the descriptor of the config of image's manifest for
// platform.
func Config(ctx context.Context, provider content.Provider, image ocispec.Descriptor, platform platforms.MatchComparer) (ocispec.Descriptor, error) {
	m, err := Manifest(ctx, provider, image, platform)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return m.Config, nil
}

// ReadConfig reads the image config configDesc names, refusing one too
// large to be a config.
func ReadConfig(ctx context.Context, provider content.Provider, configDesc ocispec.Descriptor) (ocispec.Image, error) {
	var config ocispec.Image
	err := readJSON(ctx, provider, configDesc, &config)
	return config, err
}

// RootFS returns the diff IDs of the image config configDesc names.
func RootFS(ctx context.Context, provider content.Provider, configDesc ocispec.Descriptor) ([]digest.Digest, error) {
	config, err := ReadConfig(ctx, provider, configDesc)
	if err != nil {
		return nil, err
	}
	return config.RootFS.DiffIDs, nil
}

// Platforms returns the platforms image has manifests for: those its
// indexes declare, or, for a manifest listed without one, its config's.
// Entries declaring an "unknown" OS or architecture (attestations) are
// left out.
func Platforms(ctx context.Context, provider content.Provider, image ocispec.Descriptor) ([]ocispec.Platform, error) {
	var ps []ocispec.Platform
	err := Walk(ctx, HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if desc.Platform != nil {
			if desc.Platform.OS != "unknown" && desc.Platform.Architecture != "unknown" {
				ps = append(ps, platforms.Normalize(*desc.Platform))
			}
			return nil, ErrSkipDesc
		}
		switch {
		case IsIndexType(desc.MediaType):
			return Children(ctx, provider, desc)
		case IsManifestType(desc.MediaType):
			var m ocispec.Manifest
			if err := readJSON(ctx, provider, desc, &m); err != nil {
				return nil, err
			}
			p, err := ConfigPlatform(ctx, provider, m.Config)
			if err != nil {
				return nil, err
			}
			ps = append(ps, p)
		}
		return nil, nil
	}), image)
	return ps, err
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
