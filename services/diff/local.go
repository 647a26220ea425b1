// Package diff holds the diff service: the local service, which applies
// layers onto mounts (as unpacking an image does) and makes layers from
// the difference between two mount sets with the configured differ
// plugins, and its gRPC adapter.
package diff

import (
	"context"
	"fmt"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
)

// Config is the service's section of the daemon's config file,
// [plugins."io.containerd.service.v1.diff-service"] as in containerd.
type Config struct {
	// Order names the differ plugins to use, most preferred first. A call
	// goes to the first that does not answer NotImplemented for it; each
	// must give the same result, so the order only picks the fastest.
	// The key is containerd's.
	Order []string `toml:"default"`
}

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.ServicePlugin,
		ID:       services.DiffService,
		Requires: []plugin.Type{plugin.DiffPlugin},
		Config:   &Config{Order: []string{"walking"}},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			differs, err := orderedDiffers(ic, ic.Config.(*Config).Order)
			if err != nil {
				return nil, err
			}
			return NewLocal(differs...), nil
		},
	})
}

// Differ is what a differ plugin's instance must be, and what the diff
// service is.
type Differ interface {
	diff.Comparer
	diff.Applier
}

// orderedDiffers returns the differ plugins named in order. Each must have
// loaded: a configured differ that is missing is a configuration error.
func orderedDiffers(ic *plugin.InitContext, order []string) ([]Differ, error) {
	if len(order) == 0 {
		return nil, fmt.Errorf("no differs configured")
	}
	loaded, err := ic.GetByType(plugin.DiffPlugin)
	if err != nil {
		return nil, err
	}
	differs := make([]Differ, len(order))
	for i, name := range order {
		p, ok := loaded[name]
		if !ok {
			return nil, fmt.Errorf("differ %q is not loaded", name)
		}
		inst, err := p.Instance()
		if err != nil {
			return nil, fmt.Errorf("differ %q failed to load: %w", name, err)
		}
		if differs[i], ok = inst.(Differ); !ok {
			return nil, fmt.Errorf("differ %q is a %T, which does not both apply and compare layers", name, inst)
		}
	}
	return differs, nil
}

// localService tries its differs in order; NotImplemented passes a call on.
type localService struct {
	differs []Differ
}

// NewLocal returns the diff service over differs, tried in order.
func NewLocal(differs ...Differ) Differ {
	return &localService{differs: differs}
}

// Apply unpacks the layer desc names onto mounts and returns the
// descriptor of the uncompressed layer, whose digest is its diff ID.
func (l *localService) Apply(ctx context.Context, desc ocispec.Descriptor, mounts []mount.Mount, opts ...diff.ApplyOpt) (ocispec.Descriptor, error) {
	// The digest is how the content store finds the blob.
	if err := desc.Digest.Validate(); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("apply: layer digest %q: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	var (
		applied ocispec.Descriptor
		err     = fmt.Errorf("apply: no differ: %w", errdefs.ErrNotImplemented)
	)
	for _, d := range l.differs {
		applied, err = d.Apply(ctx, desc, mounts, opts...)
		if !errdefs.IsNotImplemented(err) {
			break
		}
	}
	return applied, err
}

// ApplyStream applies a layer from its bytes as they arrive, through the
// first differ, the one Apply would try first. Only NotImplemented, which
// a StreamApplier returns having read nothing, passes the call on; the
// caller then applies from the content store with Apply, which tries the
// others.
func (l *localService) ApplyStream(ctx context.Context, desc ocispec.Descriptor, r io.Reader, mounts []mount.Mount, opts ...diff.ApplyOpt) (ocispec.Descriptor, error) {
	if len(l.differs) > 0 {
		if sa, ok := l.differs[0].(diff.StreamApplier); ok {
			return sa.ApplyStream(ctx, desc, r, mounts, opts...)
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("apply %s: the first differ reads layers from the content store only: %w", desc.Digest, errdefs.ErrNotImplemented)
}

// Compare writes the difference from lower to upper into the content
// store as a layer and returns its descriptor.
func (l *localService) Compare(ctx context.Context, lower, upper []mount.Mount, opts ...diff.Opt) (ocispec.Descriptor, error) {
	var (
		desc ocispec.Descriptor
		err  = fmt.Errorf("compare: no differ: %w", errdefs.ErrNotImplemented)
	)
	for _, d := range l.differs {
		desc, err = d.Compare(ctx, lower, upper, opts...)
		if !errdefs.IsNotImplemented(err) {
			break
		}
	}
	return desc, err
}
