package metadata

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"
	"unicode"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/filters"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/namespaces"
)

type imageStore struct {
	db *DB
}

// NewImageStore returns the image store of db. Images are garbage
// collection roots: their targets, and what gc.ref labels on the image name,
// are kept.
func NewImageStore(db *DB) images.Store {
	return &imageStore{db: db}
}

func (s *imageStore) Get(ctx context.Context, name string) (images.Image, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return images.Image{}, err
	}
	e, ok := s.db.images.get(ns, name)
	if !ok {
		return images.Image{}, fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
	}
	if e.err != nil {
		return images.Image{}, e.err
	}
	return cloneImage(&e.v), nil
}

// List answers from the DB's index (see index.go), with copies.
func (s *imageStore) List(ctx context.Context, fs ...string) ([]images.Image, error) {
	list, err := listIndexed(ctx, s.db.images, fs, adaptImageAt)
	if err != nil {
		return nil, err
	}
	out := make([]images.Image, len(list))
	for i, e := range list {
		out[i] = cloneImage(&e.v)
	}
	return out, nil
}

// ListEncoded is List for the gRPC service: it returns enc(image) for each
// image matching fs, encoded once per version of the image and kept with
// it in the index; without fs, one part holding all the namespace's. enc must be the same function on every call, and must
// not keep or change the image.
func (s *imageStore) ListEncoded(ctx context.Context, enc func(*images.Image) []byte, fs ...string) ([][]byte, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	var filter filters.Filter // none: the namespace's whole answer, kept
	if len(fs) > 0 {
		if filter, err = filters.ParseAll(fs...); err != nil {
			return nil, err
		}
	}
	return s.db.images.listEncoded(ns, filter, adaptImageAt, enc)
}

// cloneImage copies what a caller could change in place of an indexed
// image: its maps.
func cloneImage(image *images.Image) images.Image {
	c := *image
	c.Labels = maps.Clone(image.Labels)
	c.Target.Annotations = maps.Clone(image.Target.Annotations)
	return c
}

func adaptImageAt(image *images.Image) filters.Adaptor { return adaptImage(*image) }

// Create adds the image, setting its times; the ones given are ignored.
func (s *imageStore) Create(ctx context.Context, image images.Image) (images.Image, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return images.Image{}, err
	}
	if err := validateImage(&image); err != nil {
		return images.Image{}, err
	}

	image.CreatedAt = time.Now().UTC()
	image.UpdatedAt = image.CreatedAt
	image.Labels = withoutEmpty(image.Labels)
	image.Target.Annotations = withoutEmpty(image.Target.Annotations)
	err = s.db.Update(func(tx *bolt.Tx) error {
		bkt, err := createBucketIfNotExists(tx, namespacePath(ns, bucketKeyObjectImages)...)
		if err != nil {
			return err
		}
		ibkt, err := bkt.CreateBucket([]byte(image.Name))
		if errors.Is(err, bolterrors.ErrBucketExists) {
			return fmt.Errorf("image %q: %w", image.Name, errdefs.ErrAlreadyExists)
		}
		if err != nil {
			return fmt.Errorf("create image %q: %w", image.Name, err)
		}
		if err := writeImage(ibkt, &image); err != nil {
			return err
		}
		return s.db.indexImage(tx, ns, image.Name, ibkt)
	})
	if err != nil {
		return images.Image{}, err
	}
	return image, nil
}

// Update changes the fields fieldpaths name: "labels", "labels.<key>",
// "target" (as a whole), "annotations" and "annotations.<key>" (the
// target's). With none, labels and target are replaced.
func (s *imageStore) Update(ctx context.Context, image images.Image, fieldpaths ...string) (images.Image, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return images.Image{}, err
	}
	if image.Name == "" {
		return images.Image{}, fmt.Errorf("image name must not be empty: %w", errdefs.ErrInvalidArgument)
	}

	var updated images.Image
	err = s.db.Update(func(tx *bolt.Tx) error {
		bkt := getImageBucket(tx, ns, image.Name)
		if bkt == nil {
			return fmt.Errorf("image %q: %w", image.Name, errdefs.ErrNotFound)
		}
		current, err := readImage(image.Name, bkt)
		if err != nil {
			return err
		}

		updated = current
		if len(fieldpaths) == 0 {
			updated.Labels = image.Labels
			updated.Target = image.Target
		}
		for _, path := range fieldpaths {
			switch {
			case path == "target":
				updated.Target = image.Target
			case applyMapPath(&updated.Labels, image.Labels, path, "labels"):
			case applyMapPath(&updated.Target.Annotations, image.Target.Annotations, path, "annotations"):
			default:
				return fmt.Errorf("image %q: cannot update field %q: %w", image.Name, path, errdefs.ErrInvalidArgument)
			}
		}
		if err := validateImage(&updated); err != nil {
			return err
		}

		updated.Labels = withoutEmpty(updated.Labels)
		updated.Target.Annotations = withoutEmpty(updated.Target.Annotations)
		updated.CreatedAt = current.CreatedAt
		updated.UpdatedAt = time.Now().UTC()
		if err := writeImage(bkt, &updated); err != nil {
			return err
		}
		return s.db.indexImage(tx, ns, image.Name, bkt)
	})
	if err != nil {
		return images.Image{}, err
	}
	return updated, nil
}

// Delete removes the image; what it alone referenced goes with the next
// collection. With DeleteTarget the image must still point at that digest,
// else it is NotFound, as in containerd.
func (s *imageStore) Delete(ctx context.Context, name string, opts ...images.DeleteOpt) error {
	var dopts images.DeleteOptions
	for _, opt := range opts {
		if err := opt(ctx, &dopts); err != nil {
			return err
		}
	}
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}

	err = s.db.Update(func(tx *bolt.Tx) error {
		bkt := getImageBucket(tx, ns, name)
		if bkt == nil {
			return fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
		}
		if t := dopts.Target; t != nil && t.Digest != "" {
			var got digest.Digest
			if tbkt := bkt.Bucket(bucketKeyTarget); tbkt != nil {
				got = digest.Digest(tbkt.Get(bucketKeyDigest))
			}
			if got != t.Digest {
				return fmt.Errorf("image %q has target %v, not %v: %w", name, got, t.Digest, errdefs.ErrNotFound)
			}
		}
		if err := getImagesBucket(tx, ns).DeleteBucket([]byte(name)); err != nil {
			return fmt.Errorf("delete image %q: %w", name, err)
		}
		s.db.images.remove(tx, ns, name)
		s.db.markDirty(false)
		return nil
	})
	if err != nil {
		return err
	}
	if dopts.Synchronous {
		return s.db.collect(ctx)
	}
	return nil
}

func getImageBucket(tx *bolt.Tx, ns, name string) *bolt.Bucket {
	if name == "" {
		return nil
	}
	return getBucket(tx, namespacePath(ns, bucketKeyObjectImages, []byte(name))...)
}

// validateImage checks what is stored: containerd requires only a name,
// valid labels and a target with digest, media type and size. Names here
// must also be usable as bolt keys and free of control characters, which
// no image reference has.
func validateImage(image *images.Image) error {
	name := image.Name
	switch {
	case name == "":
		return fmt.Errorf("image name must not be empty: %w", errdefs.ErrInvalidArgument)
	case len(name) > bolt.MaxKeySize:
		return fmt.Errorf("image name is %d bytes, more than the %d allowed: %w", len(name), bolt.MaxKeySize, errdefs.ErrInvalidArgument)
	case strings.ContainsFunc(name, unicode.IsControl):
		return fmt.Errorf("image name %q has control characters: %w", name, errdefs.ErrInvalidArgument)
	}
	if err := validateLabels(image.Labels); err != nil {
		return fmt.Errorf("image %q: %w", name, err)
	}
	if err := validateTarget(image.Target); err != nil {
		return fmt.Errorf("image %q: %w", name, err)
	}
	return nil
}

func validateTarget(t ocispec.Descriptor) error {
	if err := t.Digest.Validate(); err != nil {
		return fmt.Errorf("target digest %q: %v: %w", t.Digest, err, errdefs.ErrInvalidArgument)
	}
	if t.MediaType == "" {
		return fmt.Errorf("target media type must be set: %w", errdefs.ErrInvalidArgument)
	}
	if t.Size <= 0 {
		return fmt.Errorf("target size must be greater than zero: %w", errdefs.ErrInvalidArgument)
	}
	// Annotations are not limited like labels, but bolt needs keys.
	if _, ok := t.Annotations[""]; ok {
		return fmt.Errorf("target annotation key must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

func readImage(name string, bkt *bolt.Bucket) (images.Image, error) {
	image := images.Image{Name: name}
	if err := readTimestamps(bkt, &image.CreatedAt, &image.UpdatedAt); err != nil {
		return images.Image{}, fmt.Errorf("image %q: %w", name, err)
	}
	var err error
	if image.Labels, err = readMap(bkt, bucketKeyObjectLabels); err != nil {
		return images.Image{}, fmt.Errorf("image %q: %w", name, err)
	}
	if image.Target.Annotations, err = readMap(bkt, bucketKeyAnnotations); err != nil {
		return images.Image{}, fmt.Errorf("image %q: %w", name, err)
	}
	tbkt := bkt.Bucket(bucketKeyTarget)
	if tbkt == nil {
		return images.Image{}, fmt.Errorf("image %q: no target record", name)
	}
	image.Target.Digest = digest.Digest(tbkt.Get(bucketKeyDigest))
	image.Target.MediaType = string(tbkt.Get(bucketKeyMediaType))
	image.Target.Size = readInt(tbkt, bucketKeySize)
	return image, nil
}

func writeImage(bkt *bolt.Bucket, image *images.Image) error {
	if err := writeTimestamps(bkt, image.CreatedAt, image.UpdatedAt); err != nil {
		return fmt.Errorf("image %q: %w", image.Name, err)
	}
	if err := writeMap(bkt, bucketKeyObjectLabels, image.Labels); err != nil {
		return fmt.Errorf("image %q: %w", image.Name, err)
	}
	if err := writeMap(bkt, bucketKeyAnnotations, image.Target.Annotations); err != nil {
		return fmt.Errorf("image %q: %w", image.Name, err)
	}
	tbkt, err := bkt.CreateBucketIfNotExists(bucketKeyTarget)
	if err != nil {
		return fmt.Errorf("image %q: create target: %w", image.Name, err)
	}
	if err := tbkt.Put(bucketKeyDigest, []byte(image.Target.Digest)); err != nil {
		return fmt.Errorf("image %q: write target digest: %w", image.Name, err)
	}
	if err := tbkt.Put(bucketKeyMediaType, []byte(image.Target.MediaType)); err != nil {
		return fmt.Errorf("image %q: write target media type: %w", image.Name, err)
	}
	if err := writeInt(tbkt, bucketKeySize, image.Target.Size); err != nil {
		return fmt.Errorf("image %q: %w", image.Name, err)
	}
	return nil
}

func adaptImage(image images.Image) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 0 {
			return "", false
		}
		switch fieldpath[0] {
		case "name":
			return image.Name, image.Name != ""
		case "target":
			if len(fieldpath) != 2 {
				return "", false
			}
			switch fieldpath[1] {
			case "digest":
				return image.Target.Digest.String(), image.Target.Digest != ""
			case "mediatype":
				return image.Target.MediaType, image.Target.MediaType != ""
			}
		case "labels":
			return mapField(fieldpath[1:], image.Labels)
		case "annotations":
			return mapField(fieldpath[1:], image.Target.Annotations)
		}
		return "", false
	})
}
