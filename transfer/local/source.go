package local

import (
	"context"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/reference"
)

// maxSourceLabel bounds a distribution source label: a layer shared by
// very many repositories stops collecting them rather than fail a pull
// on the store's label size limit.
const maxSourceLabel = 4000

// sourceLabeler returns a handler recording, on each blob, that it came
// from name's repository: the label containerd.io/distribution.source.
// <host> lists the repositories of that registry holding it, which lets a
// later push to another repository there mount the blob instead of
// uploading it. A name that is not a registry reference labels nothing.
func sourceLabeler(cm content.Manager, name string) images.HandlerFunc {
	spec, err := reference.Parse(name)
	if err != nil {
		return func(context.Context, ocispec.Descriptor) ([]ocispec.Descriptor, error) { return nil, nil }
	}
	host := spec.Hostname()
	repo := strings.TrimPrefix(strings.TrimPrefix(spec.Locator, host), "/")
	key := images.LabelDistributionSource + "." + host
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		info, err := cm.Info(ctx, desc.Digest)
		if err != nil {
			return nil, err
		}
		var repos []string
		if v := info.Labels[key]; v != "" {
			repos = strings.Split(v, ",")
		}
		if slices.Contains(repos, repo) {
			return nil, nil
		}
		repos = append(repos, repo)
		slices.Sort(repos)
		value := strings.Join(repos, ",")
		if len(key)+len(value) > maxSourceLabel {
			log.G(ctx).WithField("digest", desc.Digest).Debug("transfer: distribution source label full")
			return nil, nil
		}
		_, err = cm.Update(ctx, content.Info{Digest: desc.Digest, Labels: map[string]string{key: value}}, "labels."+key)
		return nil, err
	}
}
