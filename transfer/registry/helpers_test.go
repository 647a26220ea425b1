package registry

import (
	"context"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/remotes"
)

const testDigest = "sha256:2222222222222222222222222222222222222222222222222222222222222222"

func ocispecDesc() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: testDigest, Size: 1}
}

// refRecorder is a resolver that records the reference it was asked for.
type refRecorder struct{ ref *string }

func (r refRecorder) Resolve(_ context.Context, ref string) (string, ocispec.Descriptor, error) {
	*r.ref = ref
	return "", ocispec.Descriptor{}, errdefs.ErrNotImplemented
}

func (r refRecorder) Fetcher(_ context.Context, ref string) (remotes.Fetcher, error) {
	*r.ref = ref
	return nil, errdefs.ErrNotImplemented
}

func (r refRecorder) Pusher(_ context.Context, ref string) (remotes.Pusher, error) {
	*r.ref = ref
	return nil, errdefs.ErrNotImplemented
}
