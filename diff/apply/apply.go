// Package apply is the diff.Applier that unpacks layer tars onto mounted
// filesystems.
package apply

import (
	"context"
	"fmt"
	"io"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/archive/compression"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/mount"
)

type fsApplier struct {
	store content.Provider
}

// NewFileSystemApplier returns an Applier that reads layers from store.
func NewFileSystemApplier(store content.Provider) diff.Applier {
	return &fsApplier{store: store}
}

// Apply decompresses the layer desc names, by its media type, and applies
// it onto mounts in one pass, hashing the tar on the way: the returned
// descriptor is the uncompressed layer's, its digest the diff ID.
func (s *fsApplier) Apply(ctx context.Context, desc ocispec.Descriptor, mounts []mount.Mount, opts ...diff.ApplyOpt) (ocispec.Descriptor, error) {
	return s.apply(ctx, desc, nil, mounts, opts)
}

// ApplyStream is Apply reading the compressed layer from r rather than
// from the content store.
func (s *fsApplier) ApplyStream(ctx context.Context, desc ocispec.Descriptor, r io.Reader, mounts []mount.Mount, opts ...diff.ApplyOpt) (ocispec.Descriptor, error) {
	if r == nil {
		return ocispec.Descriptor{}, fmt.Errorf("apply layer %s: no stream: %w", desc.Digest, errdefs.ErrInvalidArgument)
	}
	return s.apply(ctx, desc, r, mounts, opts)
}

// apply applies the layer read from blob, or from the store if nil.
func (s *fsApplier) apply(ctx context.Context, desc ocispec.Descriptor, blob io.Reader, mounts []mount.Mount, opts []diff.ApplyOpt) (d ocispec.Descriptor, err error) {
	// Without mounts there is nothing to apply onto: the layer would be
	// unpacked into the bare temporary mount directory, and left there.
	if len(mounts) == 0 {
		return ocispec.Descriptor{}, fmt.Errorf("apply layer %s: no mounts to apply it onto: %w", desc.Digest, errdefs.ErrInvalidArgument)
	}
	start := time.Now()
	defer func() {
		if err == nil {
			log.G(ctx).WithFields(map[string]any{
				"d":        time.Since(start),
				"digest":   desc.Digest,
				"size":     desc.Size,
				"media":    desc.MediaType,
				"streamed": blob != nil,
			}).Debug("diff applied")
		}
	}()

	var config diff.ApplyConfig
	for _, o := range opts {
		if err := o(ctx, desc, &config); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("apply option: %w", err)
		}
	}
	comp, err := compression.FromMediaType(desc.MediaType)
	if err != nil {
		return ocispec.Descriptor{}, err
	}

	if blob == nil {
		ra, err := s.store.ReaderAt(ctx, desc)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("open layer %s: %w", desc.Digest, err)
		}
		defer ra.Close()
		blob = content.NewReader(ra)
	}
	if config.Progress != nil {
		pr := &progressReader{r: blob, report: config.Progress}
		config.Progress(0)
		defer func() { config.Progress(pr.n) }()
		blob = pr
	}
	dec, err := compression.NewDecompressor(blob, comp)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	defer dec.Close()

	digester := digest.Canonical.Digester()
	tar := &hashReader{r: dec, h: digester.Hash()}
	if err := apply(ctx, mounts, tar, config.SyncFs); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("apply layer %s: %w", desc.Digest, err)
	}
	// archive.Apply reads to EOF already; this guards the digest against
	// any Apply that stops at the tar's end marker.
	if _, err := io.Copy(io.Discard, tar); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("read layer %s: %w", desc.Digest, err)
	}

	applied := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayer,
		Digest:    digester.Digest(),
		Size:      tar.n,
	}
	if config.DiffID != "" && config.DiffID != applied.Digest {
		return ocispec.Descriptor{}, fmt.Errorf("layer %s: diff ID is %s, want %s: %w",
			desc.Digest, applied.Digest, config.DiffID, errdefs.ErrFailedPrecondition)
	}
	return applied, nil
}

// hashReader hashes and counts what is read through it.
type hashReader struct {
	r io.Reader
	h io.Writer
	n int64
}

func (r *hashReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.h.Write(p[:n])
		r.n += int64(n)
	}
	return n, err
}

// progressReader reports the bytes read through it, at most every
// progressEvery.
type progressReader struct {
	r      io.Reader
	report func(int64)
	n      int64
	last   int64
}

const progressEvery = 4 << 20

func (r *progressReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	if r.n-r.last >= progressEvery {
		r.last = r.n
		r.report(r.n)
	}
	return n, err
}
