// Package images is the CRI image service: runtime.v1.ImageService over the
// daemon's own content store, image store and snapshotters, and the image
// lookups the runtime service needs (the sandbox image, a container's
// image config and snapshot parent).
package images

import (
	"context"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/snapshots"
)

// Deps are the daemon's local services the image service works on; all in
// process, the ones that publish events (images, content, snapshots).
type Deps struct {
	Content      content.Store
	Images       images.Store
	Snapshotters map[string]snapshots.Snapshotter
	Leases       leases.Manager
	// Applier applies layers (the daemon's diff service).
	Applier diff.Applier
}

// Image is an image as the CRI sees it: one entry per config digest,
// whatever names point at it.
type Image struct {
	// ID is the image config's digest, the CRI's image id.
	ID string
	// References are every name of the image in the store (tags and
	// digest references).
	References []string
	// ChainID is the top of the image's unpacked layers: the parent of a
	// container's snapshot.
	ChainID digest.Digest
	// Size is the image's size as the CRI reports it (its unpacked size
	// in the snapshotter, or the compressed size when not unpacked).
	Size int64
	// Spec is the image's config (user, env, entrypoint, volumes...).
	Spec ocispec.Image
	// Pinned images are never garbage collected (the sandbox image).
	Pinned bool
}

// Service is the CRI image service.
type Service struct {
	runtime.UnimplementedImageServiceServer
	config *config.Config
	deps   Deps
}

// New returns the image service; Load then fills its view of the store.
func New(cfg *config.Config, deps Deps) (*Service, error) {
	return &Service{config: cfg, deps: deps}, nil
}

// Load reads the images of the CRI namespace into the service's cache;
// called once at start-up.
func (s *Service) Load(ctx context.Context) error { return nil }

// LocalResolve finds a present image by id, id prefix, name or digest
// reference (a short name such as "busybox" normalised to
// docker.io/library/busybox:latest); NotFound if absent.
func (s *Service) LocalResolve(ctx context.Context, ref string) (Image, error) {
	return Image{}, errdefs.ErrNotImplemented
}

// EnsureImage returns the image ref names, pulling it (with auth, for the
// runtime handler's snapshotter) when it is not present. The sandbox image
// comes through here.
func (s *Service) EnsureImage(ctx context.Context, ref string, auth *runtime.AuthConfig, runtimeHandler string) (Image, error) {
	return Image{}, errdefs.ErrNotImplemented
}

// Snapshotter returns the snapshotter images are unpacked into for a
// runtime handler.
func (s *Service) Snapshotter(runtimeHandler string) string {
	if r, err := s.config.RuntimeFor(runtimeHandler); err == nil && r.Snapshotter != "" {
		return r.Snapshotter
	}
	return s.config.Containerd.Snapshotter
}
