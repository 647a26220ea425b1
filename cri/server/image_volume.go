package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	crierrors "k8s.io/cri-api/pkg/errors"

	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/snapshots"
)

// Image volumes (KEP-4639): a CRI mount with an image mounts that image's
// root filesystem, or a directory of it (image_sub_path), read-only at
// container_path. Each one is a read-only view snapshot of the image's
// layers, keyed by the container's id and the mount's index, mounted on
// <state>/image-volumes/<container id>/<index> and bind-mounted from there
// into the container. The container's record refers to the views by
// gc.ref labels, so garbage collection keeps them while it exists;
// RemoveContainer unmounts and removes them.
//
// containerd 2.x shares one mount per image and pod and cleans it up when
// the pod stops; one per container keeps each container's volumes its own
// (no two creates race for one mount point) and lets RemoveContainer
// clean up exactly what the container used.

const imageVolumesDir = "image-volumes"

// The mount calls, variables for the tests.
var (
	mountImageVolume   = mount.All
	unmountImageVolume = func(dir string) error { return mount.UnmountAll(dir, 0) }
	// imageVolumeMounted reports whether something is mounted on dir.
	imageVolumeMounted = func(dir string) (bool, error) {
		// mountinfo has the resolved path (the state directory may be
		// under a symbolic link such as /var/run).
		dir, err := filepath.EvalSymlinks(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return false, nil
			}
			return false, err
		}
		mps, err := mount.PointsUnder(dir)
		if err != nil {
			return false, err
		}
		for _, mp := range mps {
			if mp == dir {
				return true, nil
			}
		}
		return false, nil
	}
)

// isImageMount reports whether a CRI mount is an image volume.
func isImageMount(m *runtime.Mount) bool { return m.GetImage() != nil }

// imageVolumeKey is the key of the view snapshot of a container's image
// volume, by the mount's index in the container's config.
func imageVolumeKey(id string, index int) string {
	return "cri-image-volume-" + id + "-" + strconv.Itoa(index)
}

// imageVolumeGCLabel is the container record's label that keeps the view
// of its image volume from garbage collection.
func imageVolumeGCLabel(snapshotter string, index int) string {
	return "containerd.io/gc.ref.snapshot." + snapshotter + "/image-volume-" + strconv.Itoa(index)
}

func (s *Service) imageVolumesBase(id string) string {
	return filepath.Join(s.config.StateDir, imageVolumesDir, id)
}

func (s *Service) imageVolumeDir(id string, index int) string {
	return filepath.Join(s.imageVolumesBase(id), strconv.Itoa(index))
}

// imageVolumeError marks an image volume failure as the kubelet knows it
// (its message starts with ImageVolumeMountFailed, as containerd's do),
// keeping err's kind for the gRPC code.
func imageVolumeError(err error) error {
	return fmt.Errorf("%w: %w", crierrors.ErrImageVolumeMountFailed, err)
}

// validateImageMounts checks a container's image volumes before anything
// is made: an image is named, there is no host path, the mount is
// read-only (an image volume is never writable; the kubelet always sends
// read-only) and the sub-path is relative and stays inside the image.
func validateImageMounts(mounts []*runtime.Mount) error {
	for _, m := range mounts {
		if !isImageMount(m) {
			continue
		}
		dst, ref := m.GetContainerPath(), m.GetImage().GetImage()
		var err error
		switch {
		case ref == "":
			err = fmt.Errorf("image volume at %q names no image", dst)
		case !filepath.IsAbs(dst):
			err = fmt.Errorf("image volume %q: container path %q must be absolute", ref, dst)
		case m.GetHostPath() != "":
			err = fmt.Errorf("image volume %q at %s: host_path must be empty, not %q", ref, dst, m.GetHostPath())
		case !m.GetReadonly():
			err = fmt.Errorf("image volume %q at %s: readonly must be true (image volumes are read-only)", ref, dst)
		case m.GetImageSubPath() != "" && !filepath.IsLocal(m.GetImageSubPath()):
			err = fmt.Errorf("image volume %q at %s: image_sub_path %q must be a relative path inside the image", ref, dst, m.GetImageSubPath())
		}
		if err != nil {
			return imageVolumeError(fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument))
		}
	}
	return nil
}

// imageVolumeSetup is what mountImageVolumes made.
type imageVolumeSetup struct {
	// config is the container's config with each image volume's host
	// path set to where its image (or sub-path) is mounted and its
	// image's id as image_ref (what ContainerStatus reports).
	config *runtime.ContainerConfig
	// labels go on the container's record, to keep the views.
	labels map[string]string
}

// mountImageVolumes mounts the image volumes of cfg (validated already)
// for container id: a view of each image in snapshotter sn (named
// snName), mounted on its directory. ctx must hold a lease, to keep the
// views until the record refers to them. On failure what was made is
// undone; on success the caller undoes it with removeImageVolumes if the
// create fails later.
func (s *Service) mountImageVolumes(ctx context.Context, id string, cfg *runtime.ContainerConfig, imgs containerImages, sn snapshots.Snapshotter, snName string) (_ *imageVolumeSetup, retErr error) {
	if !hasImageMounts(cfg) {
		return &imageVolumeSetup{config: cfg}, nil
	}
	out := &imageVolumeSetup{
		config: proto.Clone(cfg).(*runtime.ContainerConfig),
		labels: map[string]string{},
	}
	defer func() {
		if retErr != nil {
			if err := s.removeImageVolumes(context.WithoutCancel(ctx), id, cfg, sn); err != nil {
				log.G(ctx).WithError(err).WithField("id", id).Warn("CRI: undoing the image volumes of a failed create")
			}
		}
	}()
	for i, m := range out.config.GetMounts() {
		if !isImageMount(m) {
			continue
		}
		src, imageID, err := s.mountImageVolume(ctx, id, i, m, imgs, sn)
		if err != nil {
			return nil, imageVolumeError(fmt.Errorf("image volume %q at %s: %w", m.GetImage().GetImage(), m.GetContainerPath(), err))
		}
		m.HostPath = src
		m.Image.ImageRef = imageID
		out.labels[imageVolumeGCLabel(snName, i)] = imageVolumeKey(id, i)
	}
	return out, nil
}

// mountImageVolume mounts one image volume, the mount at index i, and
// returns the host path to bind into the container and the image's id.
func (s *Service) mountImageVolume(ctx context.Context, id string, i int, m *runtime.Mount, imgs containerImages, sn snapshots.Snapshotter) (string, string, error) {
	ref := m.GetImage().GetImage()
	img, err := imgs.LocalResolve(ctx, ref)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return "", "", fmt.Errorf("image is not present (pull it first): %w", err)
		}
		return "", "", err
	}
	mounts, err := sn.View(ctx, imageVolumeKey(id, i), img.ChainID.String())
	if err != nil {
		return "", "", fmt.Errorf("view of the image's layers: %w", err)
	}
	dir := s.imageVolumeDir(id, i)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	if err := mountImageVolume(mounts, dir); err != nil {
		return "", "", err
	}
	src, err := imageSubPath(dir, m.GetImageSubPath())
	if err != nil {
		return "", "", err
	}
	return src, img.ID, nil
}

// imageSubPath resolves sub, a path inside the image mounted on root, to
// the host path of the directory it names. Symbolic links are followed
// inside the image only: the path handed to the OCI runtime is the
// resolved one, so that it cannot be redirected onto the host's files.
// The image volume's KEP limits sub-paths to directories.
func imageSubPath(root, sub string) (string, error) {
	if sub == "" {
		return root, nil
	}
	f, err := os.OpenInRoot(root, sub)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("image_sub_path %q does not exist in the image: %w", sub, errdefs.ErrInvalidArgument)
		}
		return "", fmt.Errorf("image_sub_path %q: %w: %w", sub, err, errdefs.ErrInvalidArgument)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("image_sub_path %q: %w", sub, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("image_sub_path %q is not a directory (only directories can be mounted): %w", sub, errdefs.ErrInvalidArgument)
	}
	// What the opened directory is, resolved by the kernel.
	path, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return "", fmt.Errorf("image_sub_path %q: %w", sub, err)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", err
	}
	if path != realRoot && !strings.HasPrefix(path, realRoot+"/") {
		return "", fmt.Errorf("image_sub_path %q resolves to %s, outside the image: %w", sub, path, errdefs.ErrInvalidArgument)
	}
	return path, nil
}

func hasImageMounts(cfg *runtime.ContainerConfig) bool {
	for _, m := range cfg.GetMounts() {
		if isImageMount(m) {
			return true
		}
	}
	return false
}

// removeImageVolumes undoes a container's image volumes: each directory
// under its base is unmounted and removed, and the views of cfg's image
// volumes are removed from sn (nil: none known; garbage collection takes
// them once no record or lease refers to them). An unmount that fails
// is an error, and nothing under that directory is removed: the caller
// retries.
func (s *Service) removeImageVolumes(ctx context.Context, id string, cfg *runtime.ContainerConfig, sn snapshots.Snapshotter) error {
	base := s.imageVolumesBase(id)
	entries, err := os.ReadDir(base)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("image volumes of container %s: %w", id, err)
	}
	var errs []error
	for _, e := range entries {
		dir := filepath.Join(base, e.Name())
		if err := unmountImageVolume(dir); err != nil {
			errs = append(errs, fmt.Errorf("image volume of container %s: %w", id, err))
			continue
		}
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("image volume of container %s: %w", id, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := os.Remove(base); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("image volumes of container %s: %w", id, err)
	}
	if sn == nil {
		return nil
	}
	for i, m := range cfg.GetMounts() {
		if !isImageMount(m) {
			continue
		}
		if err := sn.Remove(ctx, imageVolumeKey(id, i)); err != nil && !errdefs.IsNotFound(err) {
			// Not fatal: once the record is gone, nothing refers to it
			// and garbage collection takes it.
			log.G(ctx).WithError(err).WithField("id", id).Warn("CRI: removing the view of an image volume")
		}
	}
	return nil
}

// recoverImageVolumes brings the image volumes in line with the recovered
// containers after a restart. Mounts survive a restart of the daemon
// alone; after a reboot the state directory is empty, and a container not
// started yet gets its image volumes mounted again from their views so
// that StartContainer finds them (a started one has them in its own mount
// namespace, or is gone). Directories of containers that no longer exist
// (a create cut short) are unmounted and removed, with their views.
func (s *Service) recoverImageVolumes(ctx context.Context) {
	ctx = withNamespace(ctx)
	for _, c := range s.containers.List() {
		if !hasImageMounts(c.Metadata.Config) || c.Status().State() != runtime.ContainerState_CONTAINER_CREATED {
			continue
		}
		if err := s.remountImageVolumes(ctx, c); err != nil {
			log.G(ctx).WithError(err).WithField("id", c.Metadata.ID).Error("CRI: cannot mount a container's image volumes again; it will not start")
		}
	}
	entries, err := os.ReadDir(filepath.Join(s.config.StateDir, imageVolumesDir))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.G(ctx).WithError(err).Warn("CRI: image volumes")
		}
		return
	}
	for _, e := range entries {
		id := e.Name()
		if _, err := s.containers.Get(id); err == nil {
			continue
		}
		if err := s.removeOrphanImageVolumes(ctx, id); err != nil {
			log.G(ctx).WithError(err).WithField("id", id).Warn("CRI: removing the image volumes of a container that no longer exists")
		}
	}
}

// remountImageVolumes mounts again the views of c's image volumes that
// are not mounted. Their host paths (the sub-paths resolved at create)
// are in the container's spec already.
func (s *Service) remountImageVolumes(ctx context.Context, c *store.Container) error {
	id := c.Metadata.ID
	rec, err := s.deps.Containers.Get(ctx, id)
	if err != nil {
		return err
	}
	sn, ok := s.deps.Snapshotters[rec.Snapshotter]
	if !ok {
		return fmt.Errorf("snapshotter %q is not loaded: %w", rec.Snapshotter, errdefs.ErrFailedPrecondition)
	}
	for i, m := range c.Metadata.Config.GetMounts() {
		if !isImageMount(m) {
			continue
		}
		dir := s.imageVolumeDir(id, i)
		if mounted, err := imageVolumeMounted(dir); err != nil || mounted {
			if err != nil {
				return err
			}
			continue
		}
		mounts, err := sn.Mounts(ctx, imageVolumeKey(id, i))
		if err != nil {
			return fmt.Errorf("image volume %q at %s: %w", m.GetImage().GetImage(), m.GetContainerPath(), err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := mountImageVolume(mounts, dir); err != nil {
			return fmt.Errorf("image volume %q at %s: %w", m.GetImage().GetImage(), m.GetContainerPath(), err)
		}
	}
	return nil
}

// removeOrphanImageVolumes removes what a create cut short left of
// container id's image volumes: mounts, directories and views (in
// whichever snapshotter has them; the index is the directory's name).
func (s *Service) removeOrphanImageVolumes(ctx context.Context, id string) error {
	entries, err := os.ReadDir(s.imageVolumesBase(id))
	if err != nil {
		return err
	}
	var indexes []int
	for _, e := range entries {
		if i, err := strconv.Atoi(e.Name()); err == nil && i >= 0 {
			indexes = append(indexes, i)
		}
	}
	if err := s.removeImageVolumes(ctx, id, nil, nil); err != nil {
		return err
	}
	for _, sn := range s.deps.Snapshotters {
		for _, i := range indexes {
			if err := sn.Remove(ctx, imageVolumeKey(id, i)); err != nil && !errdefs.IsNotFound(err) {
				log.G(ctx).WithError(err).WithField("id", id).Warn("CRI: removing the view of an image volume")
			}
		}
	}
	return nil
}
