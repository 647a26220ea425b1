package client

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	introspectionapi "github.com/llitfkitfk/containerd/api/services/introspection/v1"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/unpack"
)

// labelDefaultSnapshotter, on a namespace, names the snapshotter its
// images unpack into when the caller names none (containerd's key).
const labelDefaultSnapshotter = "containerd.io/defaults/snapshotter"

// snapshotterPluginType is the introspection type of snapshotters.
const snapshotterPluginType = "io.containerd.snapshotter.v1"

// WithUnpackApplyOpts adds options to every layer's Apply.
func WithUnpackApplyOpts(opts ...diff.ApplyOpt) UnpackOpt {
	return func(_ context.Context, c *UnpackConfig) error {
		c.ApplyOpts = append(c.ApplyOpts, opts...)
		return nil
	}
}

// WithUnpackSnapshotOpts adds options to every snapshot the unpack makes.
func WithUnpackSnapshotOpts(opts ...snapshots.Opt) UnpackOpt {
	return func(_ context.Context, c *UnpackConfig) error {
		c.SnapshotOpts = append(c.SnapshotOpts, opts...)
		return nil
	}
}

// WithUnpackSnapshotLabels sets labels on every snapshot the unpack makes.
func WithUnpackSnapshotLabels(labels map[string]string) UnpackOpt {
	return func(_ context.Context, c *UnpackConfig) error {
		if c.SnapshotLabels == nil {
			c.SnapshotLabels = map[string]string{}
		}
		maps.Copy(c.SnapshotLabels, labels)
		return nil
	}
}

// WithSnapshotterPlatformCheck refuses to unpack an image for a platform
// its snapshotter does not declare.
func WithSnapshotterPlatformCheck() UnpackOpt {
	return func(_ context.Context, c *UnpackConfig) error {
		c.CheckPlatformSupported = true
		return nil
	}
}

// imageSnapshotter resolves the snapshotter to unpack into: the one
// named, else the namespace's containerd.io/defaults/snapshotter label,
// else the client's default, as containerd's client resolves it.
func (c *Client) imageSnapshotter(ctx context.Context, name string) (string, error) {
	if name != "" {
		return name, nil
	}
	ns, ok := namespaces.Namespace(ctx)
	if !ok {
		ns = c.defaultNamespace
	}
	if ns != "" {
		labels, err := c.NamespaceService().Labels(ctx, ns)
		if err != nil && !errdefs.IsNotFound(err) {
			return "", fmt.Errorf("default snapshotter of namespace %s: %w", ns, err)
		}
		if sn := labels[labelDefaultSnapshotter]; sn != "" {
			return sn, nil
		}
	}
	if c.snapshotter != "" {
		return c.snapshotter, nil
	}
	return DefaultSnapshotter, nil
}

// snapshotterPlatforms is the matcher of the platforms the daemon says
// the snapshotter supports; NotFound if it has no such snapshotter.
func (c *Client) snapshotterPlatforms(ctx context.Context, name string) (platforms.MatchComparer, error) {
	resp, err := c.IntrospectionService().Plugins(ctx, &introspectionapi.PluginsRequest{
		Filters: []string{fmt.Sprintf("type==%s,id==%s", snapshotterPluginType, name)},
	})
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	if len(resp.Plugins) == 0 {
		return nil, fmt.Errorf("snapshotter %s: %w", name, errdefs.ErrNotFound)
	}
	var ps []ocispec.Platform
	for _, p := range resp.Plugins[0].Platforms {
		ps = append(ps, ocispec.Platform{OS: p.Os, Architecture: p.Architecture, Variant: p.Variant})
	}
	return platforms.Any(ps...), nil
}

// Unpack applies the layers of the platform's manifest, in order, through
// the daemon's differ into the snapshotter, each committed under its
// chain ID; layers whose chain is there already are skipped, so unpacking
// again is cheap. The image config is then labelled with the top
// snapshot, so that the snapshots live as long as the image. All of it
// runs under a lease (the caller's, or one made for the call), so that
// nothing is collected half way.
//
// Layers are applied in order rather than in parallel: a snapshot made
// through the snapshots service cannot be rebased at commit.
func (i *image) Unpack(ctx context.Context, snapshotterName string, opts ...UnpackOpt) error {
	var config UnpackConfig
	for _, o := range opts {
		if err := o(ctx, &config); err != nil {
			return err
		}
	}
	ctx, done, err := i.client.WithLease(ctx)
	if err != nil {
		return err
	}
	defer done(context.WithoutCancel(ctx))

	name, err := i.client.imageSnapshotter(ctx, snapshotterName)
	if err != nil {
		return err
	}
	var match platforms.Matcher = platforms.All
	if config.CheckPlatformSupported {
		if match, err = i.client.snapshotterPlatforms(ctx, name); err != nil {
			return err
		}
	}
	snapshotOpts := config.SnapshotOpts
	if len(config.SnapshotLabels) > 0 {
		snapshotOpts = append(snapshotOpts, snapshots.WithLabels(config.SnapshotLabels))
	}
	n, err := unpackTarget(ctx, i.client.ContentStore(), i.i.Target, i.platform, unpack.Platform{
		Platform:       match,
		SnapshotterKey: name,
		Snapshotter:    i.client.SnapshotService(name),
		Applier:        i.client.DiffService(),
		SnapshotOpts:   snapshotOpts,
		ApplyOpts:      config.ApplyOpts,
	})
	if err != nil {
		return fmt.Errorf("unpack %s into %s: %w", i.i.Name, name, err)
	}
	if n == 0 {
		what := "its platform"
		if config.CheckPlatformSupported {
			what = "a platform snapshotter " + name + " supports"
		}
		return fmt.Errorf("unpack %s: no manifest for %s: %w", i.i.Name, what, errdefs.ErrNotFound)
	}
	return nil
}

// unpackTarget unpacks, from cs, the manifest of target the platform
// chooses as up says, and returns the number of manifests unpacked (0
// if up's platform matched none).
func unpackTarget(ctx context.Context, cs content.Store, target ocispec.Descriptor, platform platforms.MatchComparer, up unpack.Platform) (int, error) {
	u, err := unpack.NewUnpacker(ctx, cs, unpack.WithUnpackPlatform(up))
	if err != nil {
		return 0, err
	}
	werr := images.Dispatch(ctx, u.Unpack(localContent(cs, platform)), nil, target)
	// Waited for whatever the walk did: its unpacks must end first.
	res, err := u.Wait()
	if werr != nil {
		return 0, werr
	}
	return res.Unpacks, err
}

// localContent is the walk of an image whose content is in the store
// already (an unpack's "fetch"): an index leads to the one manifest the
// platform ranks best, a manifest to its config and layers, which must be
// there, since the unpack reads them from the store.
func localContent(cs content.Store, platform platforms.MatchComparer) images.Handler {
	children := images.LimitManifests(images.FilterPlatforms(images.ChildrenHandler(cs), platform), platform, 1)
	return images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if images.IsIndexType(desc.MediaType) || images.IsManifestType(desc.MediaType) {
			return children(ctx, desc)
		}
		if _, err := cs.Info(ctx, desc.Digest); err != nil {
			if strings.Contains(err.Error(), desc.Digest.String()) {
				return nil, err
			}
			return nil, fmt.Errorf("%s %s: %w", desc.MediaType, desc.Digest, err)
		}
		return nil, nil
	})
}
