package client

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/reference"
	"github.com/llitfkitfk/containerd/remotes"
	"github.com/llitfkitfk/containerd/remotes/docker"
	"github.com/llitfkitfk/containerd/remotes/docker/config"
	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/unpack"
)

// remoteContext applies opts over the defaults.
func (c *Client) remoteContext(ctx context.Context, opts []RemoteOpt) (*RemoteContext, error) {
	rc := &RemoteContext{}
	for _, o := range opts {
		if err := o(c, rc); err != nil {
			return nil, err
		}
	}
	if rc.Resolver == nil {
		// Loopback registries are reached over plain http when they do
		// not speak https, as containerd's hosts configuration does.
		rc.Resolver = docker.NewResolver(docker.ResolverOptions{Hosts: config.ConfigureHosts(ctx, config.HostOptions{})})
	}
	return rc, nil
}

// namedMatcher is a platform matcher that says what it matches, for
// errors (images.PlatformString).
type namedMatcher struct {
	platforms.MatchComparer
	name string
}

func (n namedMatcher) String() string { return n.name }

// onlyPlatform matches p and the platforms that can run its images (as
// platforms.Only does: arm64 runs arm/v7), preferring p.
func onlyPlatform(p ocispec.Platform) platforms.MatchComparer {
	return namedMatcher{platforms.Only(p), platforms.Format(platforms.Normalize(p))}
}

// anyPlatform is the matcher of ps, or all platforms if there are none.
func anyPlatform(ps []string) (platforms.MatchComparer, error) {
	if len(ps) == 0 {
		return platforms.All, nil
	}
	parsed := make([]ocispec.Platform, len(ps))
	for i, p := range ps {
		var err error
		if parsed[i], err = platforms.Parse(p); err != nil {
			return nil, fmt.Errorf("platform %q: %v: %w", p, err, errdefs.ErrInvalidArgument)
		}
	}
	return platforms.Any(parsed...), nil
}

// Pull fetches ref from its registry through this client (not the
// daemon's transfer service): the one manifest of an index the platform
// ranks best, with its config and layers, under a lease, and only then
// records the image (creating or updating it). With WithPullUnpack the
// layers are unpacked as they arrive.
func (c *Client) Pull(ctx context.Context, ref string, opts ...RemoteOpt) (_ Image, retErr error) {
	rc, err := c.remoteContext(ctx, opts)
	if err != nil {
		return nil, err
	}
	if rc.PlatformMatcher == nil {
		switch len(rc.Platforms) {
		case 0:
			rc.PlatformMatcher = defaultPlatform()
		case 1:
			p, err := platforms.Parse(rc.Platforms[0])
			if err != nil {
				return nil, fmt.Errorf("platform %q: %v: %w", rc.Platforms[0], err, errdefs.ErrInvalidArgument)
			}
			rc.PlatformMatcher = onlyPlatform(p)
		default:
			return nil, fmt.Errorf("pull %s: an image is pulled for one platform, not %s (Fetch takes many): %w",
				ref, strings.Join(rc.Platforms, ", "), errdefs.ErrInvalidArgument)
		}
	}

	ctx, done, err := c.WithLease(ctx)
	if err != nil {
		return nil, err
	}
	defer done(context.WithoutCancel(ctx))

	var u *unpack.Unpacker
	if rc.Unpack {
		if u, err = c.pullUnpacker(ctx, rc); err != nil {
			return nil, err
		}
		wrapper := rc.HandlerWrapper
		rc.HandlerWrapper = func(h images.Handler) images.Handler {
			if wrapper != nil {
				h = wrapper(h)
			}
			return u.Unpack(h)
		}
	}

	img, err := c.fetch(ctx, rc, ref, 1)
	var res unpack.Result
	if u != nil {
		// Wait also after a failed fetch: its unpacks must end before the
		// lease goes.
		var uerr error
		if res, uerr = u.Wait(); err == nil && uerr != nil {
			err = fmt.Errorf("unpack %s: %w", ref, uerr)
		}
	}
	if err != nil {
		return nil, err
	}
	img, err = c.createOrUpdateImage(ctx, img)
	if err != nil {
		return nil, err
	}
	i := NewImageWithPlatform(c, img, rc.PlatformMatcher)
	if u != nil && res.Unpacks == 0 {
		// Nothing the walk saw was unpacked (a manifest without a
		// platform the unpacker could place): unpack what the platform
		// chooses.
		if err := i.Unpack(ctx, rc.Snapshotter, rc.UnpackOpts...); err != nil {
			return nil, err
		}
	}
	return i, nil
}

// pullUnpacker is the unpacker of a pull into rc's snapshotter.
func (c *Client) pullUnpacker(ctx context.Context, rc *RemoteContext) (*unpack.Unpacker, error) {
	name, err := c.imageSnapshotter(ctx, rc.Snapshotter)
	if err != nil {
		return nil, err
	}
	rc.Snapshotter = name
	var uc UnpackConfig
	for _, o := range rc.UnpackOpts {
		if err := o(ctx, &uc); err != nil {
			return nil, err
		}
	}
	var match platforms.Matcher = platforms.All
	if uc.CheckPlatformSupported {
		if match, err = c.snapshotterPlatforms(ctx, name); err != nil {
			return nil, err
		}
	}
	snapshotOpts := slices.Concat(rc.SnapshotterOpts, uc.SnapshotOpts)
	if len(uc.SnapshotLabels) > 0 {
		snapshotOpts = append(snapshotOpts, snapshots.WithLabels(uc.SnapshotLabels))
	}
	return unpack.NewUnpacker(ctx, c.ContentStore(), unpack.WithUnpackPlatform(unpack.Platform{
		Platform:       match,
		SnapshotterKey: name,
		Snapshotter:    c.SnapshotService(name),
		Applier:        c.DiffService(),
		SnapshotOpts:   snapshotOpts,
		ApplyOpts:      uc.ApplyOpts,
	}))
}

// Fetch fetches ref's content for the platforms of opts (all, with
// none) and records it as an image, without unpacking.
func (c *Client) Fetch(ctx context.Context, ref string, opts ...RemoteOpt) (images.Image, error) {
	rc, err := c.remoteContext(ctx, opts)
	if err != nil {
		return images.Image{}, err
	}
	if rc.Unpack {
		return images.Image{}, fmt.Errorf("fetch %s: unpacking is Pull's: %w", ref, errdefs.ErrNotImplemented)
	}
	if rc.PlatformMatcher == nil {
		if rc.PlatformMatcher, err = anyPlatform(rc.Platforms); err != nil {
			return images.Image{}, err
		}
	}
	ctx, done, err := c.WithLease(ctx)
	if err != nil {
		return images.Image{}, err
	}
	defer done(context.WithoutCancel(ctx))
	img, err := c.fetch(ctx, rc, ref, 0)
	if err != nil {
		return images.Image{}, err
	}
	return c.createOrUpdateImage(ctx, img)
}

// fetch resolves ref and copies what it names into the content store:
// of an index, the manifests rc's platform matches (at most limit of
// them, the best, if limit > 0). Each parent is labelled with its
// children, so that the image record, once made, keeps them all.
func (c *Client) fetch(ctx context.Context, rc *RemoteContext, ref string, limit int) (images.Image, error) {
	cs := c.ContentStore()
	name, desc, err := rc.Resolver.Resolve(ctx, ref)
	if err != nil {
		return images.Image{}, fmt.Errorf("resolve %s: %w", ref, err)
	}
	if desc.MediaType == images.MediaTypeDockerSchema1Manifest {
		return images.Image{}, fmt.Errorf("%s: docker schema 1 manifests are not supported: %w", name, errdefs.ErrNotImplemented)
	}
	fetcher, err := rc.Resolver.Fetcher(ctx, name)
	if err != nil {
		return images.Image{}, fmt.Errorf("fetcher for %s: %w", name, err)
	}

	children := images.ChildrenHandler(cs)
	if rc.AllMetadata {
		children = metadataOfAllPlatforms(children, rc.PlatformMatcher)
	} else {
		children = images.FilterPlatforms(children, rc.PlatformMatcher)
	}
	if limit > 0 {
		children = images.LimitManifests(children, rc.PlatformMatcher, limit)
	}
	children = images.SetChildrenMappedLabels(cs, children, rc.ChildLabelMap)

	handlers := append(slices.Clone(rc.BaseHandlers),
		fetchFrom(cs, fetcher, name, rc.MaxConcurrentDownloads),
		children,
	)
	var handler images.Handler = images.Handlers(handlers...)
	if rc.HandlerWrapper != nil {
		handler = rc.HandlerWrapper(handler)
	}
	if err := images.Dispatch(ctx, handler, nil, desc); err != nil {
		return images.Image{}, fmt.Errorf("pull %s: %w", name, err)
	}
	return images.Image{Name: name, Target: desc, Labels: rc.Labels}, nil
}

// metadataOfAllPlatforms wraps children: the manifests of platforms m
// does not match keep their config and lose their layers.
func metadataOfAllPlatforms(children images.HandlerFunc, m platforms.Matcher) images.HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		kids, err := children(ctx, desc)
		if err != nil || desc.Platform == nil || !images.IsManifestType(desc.MediaType) || m.Match(*desc.Platform) {
			return kids, err
		}
		var configs []ocispec.Descriptor
		for _, k := range kids {
			if images.IsConfigType(k.MediaType) {
				configs = append(configs, k)
			}
		}
		return configs, nil
	}
}

// maxSourceLabel bounds a distribution source label, within the store's
// limit on a label's size.
const maxSourceLabel = 4000

// fetchFrom copies each descriptor from fetcher into cs, unless it is
// there already, and labels it with the repository it came from
// (containerd.io/distribution.source.<host>), which lets a later push to
// another repository of that registry mount it rather than upload it.
// At most downloads layers (0: any number) are copied at once: the
// bound is taken around the copy alone, not around handlers, since an
// unpacker's handlers wait for others.
func fetchFrom(cs content.Store, fetcher remotes.Fetcher, name string, downloads int) images.HandlerFunc {
	var limit *semaphore.Weighted
	if downloads > 0 {
		limit = semaphore.NewWeighted(int64(downloads))
	}
	key, repo := sourceLabel(name)
	var mu sync.Mutex // serialises the read-modify-write of labels
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if info, err := cs.Info(ctx, desc.Digest); err == nil {
			if key == "" {
				return nil, nil
			}
			mu.Lock()
			defer mu.Unlock()
			return nil, addSource(ctx, cs, info, key, repo)
		} else if !errdefs.IsNotFound(err) {
			return nil, err
		}
		if limit != nil && images.IsLayerType(desc.MediaType) {
			if err := limit.Acquire(ctx, 1); err != nil {
				return nil, err
			}
			release := sync.OnceFunc(func() { limit.Release(1) })
			defer release()
			ctx = remotes.WithDownloaded(ctx, release)
		}
		if key != "" && len(key)+len(repo) <= maxSourceLabel {
			ctx = remotes.WithCommitOpts(ctx, content.WithLabels(map[string]string{key: repo}))
		}
		return nil, remotes.Fetch(ctx, cs, fetcher, desc)
	}
}

// sourceLabel is the label key and value naming name's repository; ""
// if name is not a registry reference.
func sourceLabel(name string) (key, repo string) {
	spec, err := reference.Parse(name)
	if err != nil {
		return "", ""
	}
	host := spec.Hostname()
	return images.LabelDistributionSource + "." + host, strings.TrimPrefix(strings.TrimPrefix(spec.Locator, host), "/")
}

// addSource adds repo to the repositories the label key of info lists.
func addSource(ctx context.Context, cs content.Manager, info content.Info, key, repo string) error {
	var repos []string
	if v := info.Labels[key]; v != "" {
		repos = strings.Split(v, ",")
	}
	if slices.Contains(repos, repo) {
		return nil
	}
	repos = append(repos, repo)
	slices.Sort(repos)
	value := strings.Join(repos, ",")
	if len(key)+len(value) > maxSourceLabel {
		return nil // full: the blob stays mountable from those listed
	}
	_, err := cs.Update(ctx, content.Info{Digest: info.Digest, Labels: map[string]string{key: value}}, "labels."+key)
	return err
}

// createOrUpdateImage records img: created, or, if the name is taken,
// pointed at the new target (with its labels); a record removed in
// between is created again.
func (c *Client) createOrUpdateImage(ctx context.Context, img images.Image) (images.Image, error) {
	is := c.ImageService()
	for {
		created, err := is.Create(ctx, img)
		if err == nil {
			return created, nil
		}
		if !errdefs.IsAlreadyExists(err) {
			return images.Image{}, fmt.Errorf("image %s: %w", img.Name, err)
		}
		updated, err := is.Update(ctx, img)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return images.Image{}, fmt.Errorf("image %s: %w", img.Name, err)
		}
		return updated, nil
	}
}
