// Package images holds the images service: the local service over the
// daemon's namespaced image store, which checks records and announces
// changes as /images/* events, and its gRPC adapter.
package images

import (
	"context"
	"fmt"

	eventstypes "github.com/llitfkitfk/containerd/api/events"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/metadata"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type: plugin.ServicePlugin,
		ID:   services.ImagesService,
		// After the collector too, which synchronous deletes wait for.
		Requires: []plugin.Type{plugin.MetadataPlugin, plugin.GCPlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			m, err := ic.Get(plugin.MetadataPlugin)
			if err != nil {
				return nil, err
			}
			return NewLocal(metadata.NewImageStore(m.(*metadata.DB)), ic.Events), nil
		},
	})
}

// localService is an images.Store that refuses malformed records before the
// store sees them and announces every change.
type localService struct {
	images.Store
	publisher events.Publisher
}

// NewLocal returns store as the images service: changes are announced
// through publisher.
func NewLocal(store images.Store, publisher events.Publisher) images.Store {
	return &localService{Store: store, publisher: publisher}
}

func (l *localService) Create(ctx context.Context, image images.Image) (images.Image, error) {
	if err := checkImage(image); err != nil {
		return images.Image{}, err
	}
	created, err := l.Store.Create(ctx, image)
	if err != nil {
		return images.Image{}, err
	}
	events.Announce(ctx, l.publisher, "/images/create", &eventstypes.ImageCreate{Name: created.Name, Labels: created.Labels})
	return created, nil
}

func (l *localService) Update(ctx context.Context, image images.Image, fieldpaths ...string) (images.Image, error) {
	if err := checkImage(image); err != nil {
		return images.Image{}, err
	}
	updated, err := l.Store.Update(ctx, image, fieldpaths...)
	if err != nil {
		return images.Image{}, err
	}
	events.Announce(ctx, l.publisher, "/images/update", &eventstypes.ImageUpdate{Name: updated.Name, Labels: updated.Labels})
	return updated, nil
}

func (l *localService) Delete(ctx context.Context, name string, opts ...images.DeleteOpt) error {
	var o images.DeleteOptions
	for _, opt := range opts {
		if err := opt(ctx, &o); err != nil {
			return err
		}
	}
	if o.Target != nil {
		if err := o.Target.Digest.Validate(); err != nil {
			return fmt.Errorf("delete image %q: target digest %q: %v: %w", name, o.Target.Digest, err, errdefs.ErrInvalidArgument)
		}
	}
	if err := l.Store.Delete(ctx, name, opts...); err != nil {
		return err
	}
	events.Announce(ctx, l.publisher, "/images/delete", &eventstypes.ImageDelete{Name: name})
	return nil
}

// ListEncoded hands on to the store's ListEncoded, if it has one, else is
// NotImplemented.
func (l *localService) ListEncoded(ctx context.Context, enc func(*images.Image) []byte, fs ...string) ([][]byte, error) {
	el, ok := l.Store.(encodedLister)
	if !ok {
		return nil, fmt.Errorf("list encoded images: %w", errdefs.ErrNotImplemented)
	}
	return el.ListEncoded(ctx, enc, fs...)
}

// checkImage refuses what no store could take: no name, or a target
// digest that does not parse. The store checks the rest.
func checkImage(image images.Image) error {
	if image.Name == "" {
		return fmt.Errorf("image name is required: %w", errdefs.ErrInvalidArgument)
	}
	if d := image.Target.Digest; d != "" {
		if err := d.Validate(); err != nil {
			return fmt.Errorf("image %q: target digest %q: %v: %w", image.Name, d, err, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
