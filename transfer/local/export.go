package local

import (
	"context"

	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/transfer"
)

// export writes the images src names out through dst (an archive).
func (s *Service) export(ctx context.Context, src transfer.ImageGetter, dst transfer.ImageExporter, tc *transfer.Config) error {
	// The lease keeps content the exporter may write (a converted
	// manifest, say) until the export is done.
	ctx, _, release, err := s.withLease(ctx)
	if err != nil {
		return err
	}
	defer release()

	emit(tc, transfer.Progress{Event: "Exporting"})
	var imgs []images.Image
	if l, ok := src.(transfer.ImageLookup); ok {
		if imgs, err = l.Lookup(ctx, s.images); err != nil {
			return err
		}
	} else {
		img, err := src.Get(ctx, s.images)
		if err != nil {
			return err
		}
		imgs = []images.Image{img}
	}
	if err := dst.Export(ctx, s.content, imgs); err != nil {
		return err
	}
	emit(tc, transfer.Progress{Event: "Completed export"})
	return nil
}

// tag records the target of the image src names under dst's name(s).
func (s *Service) tag(ctx context.Context, src transfer.ImageGetter, dst transfer.ImageStorer, tc *transfer.Config) error {
	img, err := src.Get(ctx, s.images)
	if err != nil {
		return err
	}
	imgs, err := dst.Store(ctx, img.Target, s.images)
	if err != nil {
		return err
	}
	for _, img := range imgs {
		target := img.Target
		emit(tc, transfer.Progress{Event: "saved", Name: img.Name, Desc: &target})
	}
	return nil
}
