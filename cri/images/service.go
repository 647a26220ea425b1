// Package images is the CRI image service: runtime.v1.ImageService over the
// daemon's own content store, image store and snapshotters, and the image
// lookups the runtime service needs (the sandbox image, a container's
// image config and snapshot parent).
//
// As in containerd's CRI, everything lives in the k8s.io namespace, a
// pulled image is recorded under up to three names (the name pulled, its
// digest reference repo@sha256:… and its id, the config digest), each
// labelled io.cri-containerd.image=managed, and the service answers
// status and list requests from an in-memory view of those records,
// keyed by image id.
package images

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/reference/docker"
	"github.com/llitfkitfk/containerd/snapshots"
)

// Labels on the image records the CRI writes; containerd's names, so that
// either daemon reads the other's.
const (
	// LabelManaged marks a record as the CRI's.
	LabelManaged      = "io.cri-containerd.image"
	LabelManagedValue = "managed"
	// LabelPinned marks a record of an image that must stay (the sandbox
	// image): kubelet's image garbage collection leaves pinned images be.
	LabelPinned      = "io.cri-containerd.pinned"
	LabelPinnedValue = "pinned"
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
	// SnapshotterCapabilities, optional, are the capabilities each
	// snapshotter's plugin advertises; with "rebase" (overlayfs) layers
	// are unpacked in parallel, else one after another.
	SnapshotterCapabilities map[string][]string
	// ImageFSPaths, optional, are the snapshotters' root directories,
	// which ImageFsInfo reports as mountpoints; by default
	// <daemon root>/io.containerd.snapshotter.v1.<name>, as the daemon
	// lays plugins out.
	ImageFSPaths map[string]string
}

// Image is an image as the CRI sees it: one entry per config digest,
// whatever names point at it.
type Image struct {
	// ID is the image config's digest, the CRI's image id.
	ID string
	// References are every name of the image in the store (tags and
	// digest references, and the id itself), the most informative first.
	References []string
	// ChainID is the top of the image's unpacked layers: the parent of a
	// container's snapshot.
	ChainID digest.Digest
	// Size is the image's size as containerd's CRI reports it: the
	// compressed size of what the host's platform uses (index, manifest,
	// config and layers, as their descriptors give them).
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

	// platform is what images are pulled and read for: the host's.
	platform platforms.MatchComparer
	// pinned is the sandbox image's normalised name.
	pinned string
	// downloads bounds the layers downloaded at once, across pulls.
	downloads *semaphore.Weighted

	// legacyHosts is the hosts.toml directory made from the deprecated
	// inline registry settings, if there are any and no config_path.
	legacyHosts string

	cache *cache
	// refreshMu orders the reads of records into the cache: a name read
	// later is written to the cache later.
	refreshMu sync.Mutex

	fsMu    sync.Mutex
	fsStats fsStats
}

// New returns the image service; Load then fills its view of the store.
func New(cfg *config.Config, deps Deps) (*Service, error) {
	// Leases and Applier are only needed to pull: tests of the runtime
	// side may do without.
	if deps.Content == nil || deps.Images == nil {
		return nil, fmt.Errorf("CRI image service: the content and image stores are needed: %w", errdefs.ErrInvalidArgument)
	}
	s := &Service{
		config:   cfg,
		deps:     deps,
		platform: platforms.Only(platforms.DefaultSpec()),
		pinned:   cfg.SandboxImage,
		cache:    newCache(),
	}
	if r, err := docker.ParseDockerRef(cfg.SandboxImage); err == nil {
		s.pinned = r.String()
	}
	if cfg.MaxConcurrentDownloads > 0 {
		s.downloads = semaphore.NewWeighted(int64(cfg.MaxConcurrentDownloads))
	}
	if cfg.Registry.ConfigPath == "" && hasLegacyHosts(cfg.Registry) {
		dir := filepath.Join(cfg.StateDir, "registry-hosts")
		if cfg.StateDir == "" {
			var err error
			if dir, err = os.MkdirTemp("", "cri-registry-hosts"); err != nil {
				return nil, err
			}
		}
		if err := writeLegacyHosts(dir, cfg.Registry); err != nil {
			return nil, fmt.Errorf("[plugins.%q.registry]: %w", config.PluginURI, err)
		}
		s.legacyHosts = dir
	}
	if s.deps.ImageFSPaths == nil {
		s.deps.ImageFSPaths = map[string]string{}
		if cfg.RootDir != "" {
			for name := range deps.Snapshotters {
				s.deps.ImageFSPaths[name] = filepath.Join(filepath.Dir(cfg.RootDir), "io.containerd.snapshotter.v1."+name)
			}
		}
	}
	return s, nil
}

// withNamespace puts the CRI's namespace on ctx: requests arrive with
// none.
func withNamespace(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, config.Namespace)
}

// Load reads the images of the CRI namespace into the service's cache;
// called once at start-up. As containerd's CRI does, it adopts images
// others put there (ctr import): their records get the managed label and
// an id record, and the sandbox image's records the pinned label. An
// image it cannot read (content missing, no manifest for this platform)
// is left out, with a warning.
func (s *Service) Load(ctx context.Context) error {
	ctx = withNamespace(ctx)
	recs, err := s.deps.Images.List(ctx)
	if err != nil {
		return fmt.Errorf("list images of namespace %s: %w", config.Namespace, err)
	}
	for _, rec := range recs {
		if err := s.load(ctx, rec); err != nil {
			// One image the CRI cannot read does not keep the others,
			// or the daemon, from starting.
			log.G(ctx).WithError(err).WithField("image", rec.Name).Warn("CRI: image left out")
		}
	}
	return nil
}

// load adopts and caches one record.
func (s *Service) load(ctx context.Context, rec images.Image) error {
	img, err := s.imageOf(ctx, rec)
	if err != nil {
		return err
	}
	want := s.labels(rec.Name)
	for k, v := range want {
		if rec.Labels[k] == v {
			continue
		}
		// Adopt it: the id record first, so that the image is found by
		// id as soon as it is by this name.
		for _, name := range []string{img.ID, rec.Name} {
			if err := s.createOrUpdate(ctx, name, rec.Target, want); err != nil {
				return fmt.Errorf("label image %s: %w", name, err)
			}
			if err := s.Update(ctx, name); err != nil {
				return err
			}
		}
		return nil
	}
	return s.Update(ctx, rec.Name)
}

// Update brings the cache in step with the image record name, whatever
// changed it (created, retargeted, relabelled or deleted): for image
// events from other clients of the k8s.io namespace.
func (s *Service) Update(ctx context.Context, name string) error {
	ctx = withNamespace(ctx)
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	rec, err := s.deps.Images.Get(ctx, name)
	if errdefs.IsNotFound(err) {
		s.cache.update(name, nil, false)
		return nil
	}
	if err != nil {
		return fmt.Errorf("image %s: %w", name, err)
	}
	img, err := s.imageOf(ctx, rec)
	if errdefs.IsNotFound(err) {
		// Its content is not all there: the record was removed, and its
		// content collected, since it was read, or it names content that
		// never was complete. Either way the CRI has no such image.
		log.G(ctx).WithError(err).WithField("image", name).Debug("CRI: image without its content")
		s.cache.update(name, nil, false)
		return nil
	}
	if err != nil {
		return fmt.Errorf("image %s: %w", name, err)
	}
	s.cache.update(name, &img, rec.Labels[LabelPinned] == LabelPinnedValue)
	return nil
}

// imageOf reads what the CRI reports of an image record from its content,
// for the host's platform.
func (s *Service) imageOf(ctx context.Context, rec images.Image) (Image, error) {
	cs := s.deps.Content
	m, err := images.Manifest(ctx, cs, rec.Target, s.platform)
	if err != nil {
		return Image{}, err
	}
	spec, err := images.ReadConfig(ctx, cs, m.Config)
	if err != nil {
		return Image{}, fmt.Errorf("image config %s: %w", m.Config.Digest, err)
	}
	// The size containerd's CRI reports: the descriptors' sizes of what
	// this platform uses.
	var size int64
	children := images.LimitManifests(images.FilterPlatforms(images.ChildrenHandler(cs), s.platform), s.platform, 1)
	if err := images.Walk(ctx, images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		size += desc.Size
		if images.IsLayerType(desc.MediaType) || images.IsConfigType(desc.MediaType) {
			return nil, nil
		}
		return children(ctx, desc)
	}), rec.Target); err != nil {
		return Image{}, err
	}
	return Image{
		ID:         m.Config.Digest.String(),
		References: []string{rec.Name},
		ChainID:    identity.ChainID(spec.RootFS.DiffIDs),
		Size:       size,
		Spec:       spec,
	}, nil
}

// labels are the CRI's labels for a record named name.
func (s *Service) labels(name string) map[string]string {
	l := map[string]string{LabelManaged: LabelManagedValue}
	if name == s.pinned {
		l[LabelPinned] = LabelPinnedValue
	}
	return l
}

// createOrUpdate points the record name at target with the CRI's labels,
// creating it if need be; it adds the pinned label but never takes it
// away (the sandbox image may have been another name's), as containerd.
func (s *Service) createOrUpdate(ctx context.Context, name string, target ocispec.Descriptor, labels map[string]string) error {
	for {
		_, err := s.deps.Images.Create(ctx, images.Image{Name: name, Target: target, Labels: labels})
		if err == nil || !errdefs.IsAlreadyExists(err) {
			return err
		}
		old, err := s.deps.Images.Get(ctx, name)
		if errdefs.IsNotFound(err) {
			continue // removed in between: create it again
		}
		if err != nil {
			return err
		}
		paths := []string{"target"}
		if old.Labels[LabelManaged] != labels[LabelManaged] {
			paths = append(paths, "labels."+LabelManaged)
		}
		if labels[LabelPinned] == LabelPinnedValue && old.Labels[LabelPinned] != LabelPinnedValue {
			paths = append(paths, "labels."+LabelPinned)
		}
		if old.Target.Digest == target.Digest && len(paths) == 1 {
			return nil
		}
		_, err = s.deps.Images.Update(ctx, images.Image{Name: name, Target: target, Labels: labels}, paths...)
		if errdefs.IsNotFound(err) {
			continue
		}
		return err
	}
}

// LocalResolve finds a present image as containerd's CRI does: by full
// id ("sha256:<hex>"), else by name (a short name such as "busybox"
// normalised to docker.io/library/busybox:latest, or a digest
// reference), else by a prefix of its id ("3f57d9401f8d", with or
// without "sha256:"); NotFound if absent.
func (s *Service) LocalResolve(ctx context.Context, ref string) (Image, error) {
	if ref == "" {
		return Image{}, fmt.Errorf("no image named: %w", errdefs.ErrNotFound)
	}
	if _, err := digest.Parse(ref); err == nil {
		return s.cache.get(ref)
	}
	if named, err := docker.ParseDockerRef(ref); err == nil {
		if id, ok := s.cache.resolve(named.String()); ok {
			return s.cache.get(id)
		}
	}
	img, err := s.cache.get(ref)
	if errdefs.IsNotFound(err) {
		return Image{}, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
	}
	return img, err
}

// EnsureImage returns the image ref names, pulling it (with auth, for the
// runtime handler's snapshotter) when it is not present. The sandbox image
// comes through here.
func (s *Service) EnsureImage(ctx context.Context, ref string, auth *runtime.AuthConfig, runtimeHandler string) (Image, error) {
	img, err := s.LocalResolve(ctx, ref)
	if err == nil || !errdefs.IsNotFound(err) {
		return img, err
	}
	return s.Pull(ctx, ref, auth, runtimeHandler)
}

// Snapshotter returns the snapshotter images are unpacked into for a
// runtime handler.
func (s *Service) Snapshotter(runtimeHandler string) string {
	if r, err := s.config.RuntimeFor(runtimeHandler); err == nil && r.Snapshotter != "" {
		return r.Snapshotter
	}
	return s.config.Containerd.Snapshotter
}
