package testutil

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/archive"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/mount"
)

// DirApplier applies gzip layers from CS straight into a bind mount's
// source directory, so that unpack tests mount nothing on the host.
type DirApplier struct{ CS content.Provider }

func (a DirApplier) Apply(ctx context.Context, desc ocispec.Descriptor, mounts []mount.Mount, opts ...diff.ApplyOpt) (ocispec.Descriptor, error) {
	if len(mounts) != 1 || mounts[0].Type != "bind" {
		return ocispec.Descriptor{}, fmt.Errorf("DirApplier: want one bind mount, got %v", mounts)
	}
	ra, err := a.CS.ReaderAt(ctx, desc)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer ra.Close()
	zr, err := gzip.NewReader(content.NewReader(ra))
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	dg := digest.Canonical.Digester()
	n, err := archive.Apply(ctx, mounts[0].Source, io.TeeReader(zr, dg.Hash()))
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	io.Copy(dg.Hash(), zr) // the tar's trailing padding
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: dg.Digest(), Size: n}, nil
}
