package image

import (
	"context"
	"maps"
	"math"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/api/convert"
	transfertypes "github.com/llitfkitfk/containerd/api/types/transfer"
	"github.com/llitfkitfk/containerd/streaming"
	"github.com/llitfkitfk/containerd/transfer"
)

// StoreOpt sets an option of a Store a client names (NewStore).
type StoreOpt func(*Store)

// WithImageLabels sets the labels of the images stored.
func WithImageLabels(labels map[string]string) StoreOpt {
	return func(s *Store) { s.imageLabels = maps.Clone(labels) }
}

// WithPlatforms chooses the platforms to fetch or push, in order of
// preference; none means all.
func WithPlatforms(p ...ocispec.Platform) StoreOpt {
	return func(s *Store) { s.platforms = append(s.platforms, p...) }
}

// WithAllMetadata fetches the manifests and configs of every platform,
// the layers of the chosen ones only.
func WithAllMetadata(s *Store) { s.allMetadata = true }

// WithManifestLimit fetches at most limit manifests of an index, best
// first.
func WithManifestLimit(limit int) StoreOpt {
	return func(s *Store) { s.manifestLimit = limit }
}

// WithUnpack unpacks the platform's layers into snapshotter ("" for the
// daemon's default) after the transfer.
func WithUnpack(p ocispec.Platform, snapshotter string) StoreOpt {
	return func(s *Store) {
		s.unpacks = append(s.unpacks, transfer.UnpackConfiguration{Platform: p, Snapshotter: snapshotter})
	}
}

// WithExtraReference adds a further full name: stored as well, or looked
// up as well (an export of several images).
func WithExtraReference(name string) StoreOpt {
	return func(s *Store) { s.extraReferences = append(s.extraReferences, Reference{Name: name}) }
}

// WithNamedPrefix names the images of an import from the archive's own
// names under prefix; with overwrite, a full name not under prefix is
// used as it is.
func WithNamedPrefix(prefix string, overwrite bool) StoreOpt {
	return func(s *Store) {
		s.extraReferences = append(s.extraReferences, Reference{Name: prefix, IsPrefix: true, AllowOverwrite: overwrite})
	}
}

// WithDigestRef is WithNamedPrefix that also stores prefix@digest, except
// for images the archive names when skipNamed.
func WithDigestRef(prefix string, overwrite, skipNamed bool) StoreOpt {
	return func(s *Store) {
		s.extraReferences = append(s.extraReferences, Reference{
			Name: prefix, IsPrefix: true, AllowOverwrite: overwrite, AddDigest: true, SkipNamedDigest: skipNamed,
		})
	}
}

// MarshalAny is the client's side of UnmarshalAny: the store as a
// containerd.types.transfer.ImageStore. It needs no stream.
func (s *Store) MarshalAny(context.Context, streaming.StreamCreator) (*anypb.Any, error) {
	m := &transfertypes.ImageStore{
		Name:          s.imageName,
		Labels:        s.imageLabels,
		Platforms:     convert.PlatformsToProto(s.platforms),
		AllMetadata:   s.allMetadata,
		ManifestLimit: uint32(min(max(s.manifestLimit, 0), math.MaxUint32)),
	}
	for _, r := range s.extraReferences {
		m.ExtraReferences = append(m.ExtraReferences, &transfertypes.ImageReference{
			Name:            r.Name,
			IsPrefix:        r.IsPrefix,
			AllowOverwrite:  r.AllowOverwrite,
			AddDigest:       r.AddDigest,
			SkipNamedDigest: r.SkipNamedDigest,
		})
	}
	for _, u := range s.unpacks {
		m.Unpacks = append(m.Unpacks, &transfertypes.UnpackConfiguration{
			Platform:    convert.PlatformsToProto([]ocispec.Platform{u.Platform})[0],
			Snapshotter: u.Snapshotter,
		})
	}
	return streaming.MarshalAny(m)
}
