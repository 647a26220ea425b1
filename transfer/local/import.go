package local

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/transfer"
)

// refSourceAnnotation marks the manifests of an imported index, telling
// the image store that names come from their annotations
// (io.containerd.image.name, org.opencontainers.image.ref.name).
const refSourceAnnotation = "io.containerd.import.ref-source"

// importImages reads src (an archive) into the content store, unpacks
// its images if dst asks, and then records them. The index and each of
// its manifests are offered to dst, whose naming rules decide which become
// images and under which names; NotFound from it means "not this one".
func (s *Service) importImages(ctx context.Context, src transfer.ImageImporter, dst transfer.ImageStorer, tc *transfer.Config) error {
	ctx, _, release, err := s.withLease(ctx)
	if err != nil {
		return err
	}
	defer release()

	emit(tc, transfer.Progress{Event: "Importing"})
	index, err := src.Import(ctx, s.content)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}

	var (
		mu    sync.Mutex
		descs = []ocispec.Descriptor{index}
	)
	var handler images.HandlerFunc = func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if desc.Digest != index.Digest {
			// Children reads manifests and indexes, which proves them
			// present; layers and configs must be checked.
			if _, err := s.content.Info(ctx, desc.Digest); err != nil {
				return nil, fmt.Errorf("archive lacks %s %s: %w", desc.MediaType, desc.Digest, err)
			}
			return images.Children(ctx, s.content, desc)
		}
		p, err := content.ReadBlob(ctx, s.content, desc)
		if err != nil {
			return nil, err
		}
		var idx ocispec.Index
		if err := json.Unmarshal(p, &idx); err != nil {
			return nil, fmt.Errorf("imported index %s: %w", desc.Digest, err)
		}
		for i := range idx.Manifests {
			m := &idx.Manifests[i]
			a := make(map[string]string, len(m.Annotations)+1)
			for k, v := range m.Annotations {
				a[k] = v
			}
			a[refSourceAnnotation] = "annotation"
			m.Annotations = a
		}
		mu.Lock()
		descs = append(descs, idx.Manifests...)
		mu.Unlock()
		return idx.Manifests, nil
	}
	if f, ok := dst.(transfer.ImageFilterer); ok {
		handler = f.ImageFilter(handler, s.content)
	}

	var h images.Handler = handler
	unpacker, _, err := s.unpacker(ctx, dst, nil)
	if err != nil {
		return err
	}
	if unpacker != nil {
		h = unpacker.Unpack(h)
	}
	// Walking the graph also proves that the archive held every blob its
	// manifests name, before any image record is made.
	if err := images.Dispatch(ctx, h, nil, index); err != nil {
		if unpacker != nil {
			unpacker.Wait()
		}
		return fmt.Errorf("import: %w", err)
	}
	if unpacker != nil {
		if _, err := unpacker.Wait(); err != nil {
			return fmt.Errorf("import: unpack: %w", err)
		}
	}

	for _, desc := range descs {
		imgs, err := dst.Store(ctx, desc, s.images)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		for _, img := range imgs {
			d := desc
			emit(tc, transfer.Progress{Event: "saved", Name: img.Name, Desc: &d})
		}
	}
	emit(tc, transfer.Progress{Event: "Completed import"})
	return nil
}
