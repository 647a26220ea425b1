package walking

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/platforms"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/diff/apply"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/plugin"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.DiffPlugin,
		ID:       "walking",
		Requires: []plugin.Type{plugin.MetadataPlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			md, err := ic.Get(plugin.MetadataPlugin)
			if err != nil {
				return nil, err
			}
			// The metadata database's namespaced view of the content store,
			// so that blobs are read and written in the caller's namespace.
			db, ok := md.(interface{ ContentStore() content.Store })
			if !ok {
				return nil, fmt.Errorf("metadata plugin %T has no content store", md)
			}
			cs := db.ContentStore()
			if cs == nil {
				return nil, fmt.Errorf("metadata plugin has no content store: %w", plugin.ErrSkipPlugin)
			}
			ic.Meta.Platforms = append(ic.Meta.Platforms, platforms.Normalize(platforms.DefaultSpec()))
			return Differ{
				Comparer: NewWalkingDiff(cs),
				Applier:  apply.NewFileSystemApplier(cs),
			}, nil
		},
	})
}

// Differ is the plugin's instance: both halves of the diff service.
type Differ struct {
	diff.Comparer
	diff.Applier
}

// ApplyStream applies a layer from its bytes as they arrive, if the
// Applier can (see diff.StreamApplier).
func (d Differ) ApplyStream(ctx context.Context, desc ocispec.Descriptor, r io.Reader, mounts []mount.Mount, opts ...diff.ApplyOpt) (ocispec.Descriptor, error) {
	if sa, ok := d.Applier.(diff.StreamApplier); ok {
		return sa.ApplyStream(ctx, desc, r, mounts, opts...)
	}
	return ocispec.Descriptor{}, fmt.Errorf("apply %s: this applier reads layers from the content store only: %w", desc.Digest, errdefs.ErrNotImplemented)
}
