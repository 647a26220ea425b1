// Package images defines image records: a name pointing at a target
// descriptor (a manifest or index) in the content store.
package images

import (
	"context"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is a named reference to content.
type Image struct {
	Name      string
	Labels    map[string]string
	Target    ocispec.Descriptor
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Store keeps the images of each namespace; the namespace comes from ctx.
type Store interface {
	Get(ctx context.Context, name string) (Image, error)
	// List returns the images matching any of the filters (fields: name,
	// target.digest, target.mediatype, labels.<key>).
	List(ctx context.Context, filters ...string) ([]Image, error)
	// Create adds image; AlreadyExists if the name is taken.
	Create(ctx context.Context, image Image) (Image, error)
	// Update changes the named fields ("labels", "labels.<key>", "target",
	// "annotations"...); with none, labels and target are replaced.
	Update(ctx context.Context, image Image, fieldpaths ...string) (Image, error)
	Delete(ctx context.Context, name string, opts ...DeleteOpt) error
}

// DeleteOptions are the options of Store.Delete.
type DeleteOptions struct {
	// Synchronous waits for garbage collection to remove what the image
	// alone referenced.
	Synchronous bool
	// Target, if set, deletes the image only if it still points there.
	Target *ocispec.Descriptor
}

// DeleteOpt sets a DeleteOptions field.
type DeleteOpt func(context.Context, *DeleteOptions) error

// SynchronousDelete makes Delete wait for garbage collection.
func SynchronousDelete() DeleteOpt {
	return func(_ context.Context, o *DeleteOptions) error {
		o.Synchronous = true
		return nil
	}
}

// DeleteTarget makes Delete conditional on the image's target.
func DeleteTarget(target *ocispec.Descriptor) DeleteOpt {
	return func(_ context.Context, o *DeleteOptions) error {
		o.Target = target
		return nil
	}
}
