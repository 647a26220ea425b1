package local

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/remotes"
	"github.com/llitfkitfk/containerd/transfer"
	"github.com/llitfkitfk/containerd/unpack"
)

// platformsGetter is a transfer object that names the platforms it is
// about (containerd's ImagePlatformsGetter).
type platformsGetter interface {
	Platforms() []ocispec.Platform
}

func emit(tc *transfer.Config, p transfer.Progress) {
	if tc.Progress != nil {
		tc.Progress(p)
	}
}

// pull fetches what src resolves to into the content store, unpacks it
// if dst asks, and only then records it in the image store: an image
// record never names content that is not all there.
func (s *Service) pull(ctx context.Context, src transfer.ImageFetcher, dst transfer.ImageStorer, tc *transfer.Config) (err error) {
	ctx, lease, release, err := s.withLeaseKeeping(ctx)
	if err != nil {
		return err
	}
	// A failed pull's partial layers are kept for the retry.
	defer func() { release(err != nil) }()

	emit(tc, transfer.Progress{Event: "Resolving from " + describe(src)})
	name, desc, err := src.Resolve(ctx)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", describe(src), err)
	}
	if desc.MediaType == images.MediaTypeDockerSchema1Manifest {
		return fmt.Errorf("%s: docker schema 1 manifests are not supported: %w", name, errdefs.ErrInvalidArgument)
	}
	emit(tc, transfer.Progress{Event: "Pulling from " + describe(src)})
	emit(tc, transfer.Progress{Event: "fetching image content", Name: name, Desc: &desc})

	fetcher, err := src.Fetcher(ctx, name)
	if err != nil {
		return fmt.Errorf("fetcher for %s: %w", name, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := newTracker(tc.Progress, name, "downloading")
	t.start(ctx, func(ctx context.Context) ([]content.Status, error) { return s.content.ListStatuses(ctx) })
	defer t.finishPolling()

	var ingester content.Ingester = s.content
	if t != nil {
		ingester = trackingIngester{Ingester: s.content, t: t}
	}
	sources := newSourceLabeler(s.content, name)
	// Waited for on every return: its goroutines use ctx.
	defer sources.wait()
	fetch := remotes.FetchHandler(ingester, fetcher)
	commitOpts := sources.commitOpts()
	unpacker, requests, err := s.unpacker(ctx, dst, t)
	if err != nil {
		return err
	}
	fetchOne := images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		t.add(desc)
		if _, err := s.content.Info(ctx, desc.Digest); err == nil {
			// Held by this lease from now, in case only an earlier,
			// failed pull's lease held it.
			if err := s.hold(ctx, lease, desc.Digest.String()); err != nil {
				return nil, err
			}
			t.exists(desc)
			return nil, nil
		}
		// The limit bounds every layer fetch, the walk's and the
		// unpacker's alike (see remotes.LimitDownload).
		ctx, release, err := remotes.LimitDownload(ctx, s.downloads, desc)
		if err != nil {
			return nil, err
		}
		defer release()
		if commitOpts != nil {
			ctx = remotes.WithCommitOpts(ctx, commitOpts...)
		}
		if _, err := fetch(ctx, desc); err != nil {
			return nil, err
		}
		t.complete(desc)
		return nil, nil
	})

	children := images.ChildrenHandler(s.content)
	if f, ok := dst.(transfer.ImageFilterer); ok {
		children = f.ImageFilter(children, s.content)
	}
	children = s.requireManifest(name, desc.Digest, wanted(dst), children)
	if t != nil {
		inner := children
		children = func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			kids, err := inner(ctx, desc)
			t.children(desc, kids)
			return kids, err
		}
	}
	// Labels name the children a parent keeps alive once the lease is
	// gone; set on the parent after its children are known.
	children = images.SetChildrenLabels(s.content, children)

	var handler images.Handler = images.Handlers(fetchOne, images.HandlerFunc(sources.handler), children)
	if unpacker != nil {
		handler = unpacker.Unpack(handler)
	}

	if err := images.Dispatch(ctx, handler, nil, desc); err != nil {
		if unpacker != nil {
			unpacker.Wait() // for its cleanup; the fetch error is the one to report
		}
		return fmt.Errorf("pull %s: %w", name, err)
	}
	if unpacker != nil {
		if _, err := unpacker.Wait(); err != nil {
			return fmt.Errorf("unpack %s: %w", name, err)
		}
		for _, r := range requests {
			if _, err := images.Manifest(ctx, s.content, desc, platforms.Only(r.Platform)); err != nil {
				return fmt.Errorf("unpack %s for platform %s: %w", name, platforms.Format(r.Platform), err)
			}
		}
	}
	if err := sources.wait(); err != nil {
		return fmt.Errorf("pull %s: %w", name, err)
	}
	t.finishPolling()

	imgs, err := dst.Store(ctx, desc, s.images)
	if err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	for _, img := range imgs {
		target := img.Target
		emit(tc, transfer.Progress{Event: "saved", Name: img.Name, Desc: &target})
	}
	emit(tc, transfer.Progress{Event: "Completed pull from " + describe(src)})
	return nil
}

// wanted names the platforms dst asks for, for error messages.
func wanted(dst interface{}) []ocispec.Platform {
	if pg, ok := dst.(platformsGetter); ok {
		if ps := pg.Platforms(); len(ps) > 0 {
			return ps
		}
	}
	if u, ok := dst.(transfer.ImageUnpacker); ok {
		var ps []ocispec.Platform
		for _, c := range u.UnpackPlatforms() {
			ps = append(ps, c.Platform)
		}
		return ps
	}
	return nil
}

// requireManifest wraps children so that an index of manifests of which
// the destination's filter keeps none fails there, naming the platforms,
// before any layer is fetched; otherwise the pull would record an image
// with nothing of the platform asked for.
func (s *Service) requireManifest(name string, root digest.Digest, want []ocispec.Platform, children images.HandlerFunc) images.HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		kids, err := children(ctx, desc)
		if err != nil || len(kids) > 0 || desc.Digest != root || !images.IsIndexType(desc.MediaType) {
			return kids, err
		}
		var idx ocispec.Index
		p, err := content.ReadBlob(ctx, s.content, desc)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(p, &idx); err != nil {
			return nil, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		if len(idx.Manifests) == 0 {
			return nil, nil
		}
		var have []string
		for _, m := range idx.Manifests {
			if m.Platform != nil {
				have = append(have, platforms.Format(*m.Platform))
			}
		}
		return nil, fmt.Errorf("%s has no manifest for platform %s (it has %s): %w",
			name, formatPlatforms(want), strings.Join(have, ", "), errdefs.ErrNotFound)
	}
}

func formatPlatforms(ps []ocispec.Platform) string {
	if len(ps) == 0 {
		return "requested"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = platforms.Format(p)
	}
	return strings.Join(s, ", ")
}

// unpacker returns an Unpacker for the unpacks dst asks for, or nil if it
// asks for none. A request that matches no configured platform and
// snapshotter fails, naming it, rather than leave an image that cannot be
// run while the client thinks it was unpacked.
func (s *Service) unpacker(ctx context.Context, dst interface{}, t *tracker) (*unpack.Unpacker, []transfer.UnpackConfiguration, error) {
	iu, ok := dst.(transfer.ImageUnpacker)
	if !ok {
		return nil, nil, nil
	}
	requests := iu.UnpackPlatforms()
	if len(requests) == 0 {
		return nil, nil, nil
	}
	var opts []unpack.UnpackerOpt
	for _, r := range requests {
		up, ok := s.unpackPlatform(r)
		if !ok {
			sn := r.Snapshotter
			if sn == "" {
				sn = "default"
			}
			return nil, nil, fmt.Errorf("unpack for platform %s into snapshotter %s is not configured: %w",
				platforms.Format(r.Platform), sn, errdefs.ErrInvalidArgument)
		}
		log.G(ctx).WithField("platform", platforms.Format(r.Platform)).WithField("snapshotter", up.SnapshotterKey).Debug("transfer: unpacking")
		opts = append(opts, unpack.WithUnpackPlatform(up))
	}
	if t != nil {
		opts = append(opts, unpack.WithProgress(func(p unpack.Progress) {
			t.extracting(digest.Digest(p.Layer), p.Bytes, p.Event == "unpacked" || p.Event == "already exists")
		}))
	}
	u, err := unpack.NewUnpacker(ctx, s.content, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("unpacker: %w", err)
	}
	return u, requests, nil
}

// unpackPlatform finds the configured unpack for r: its platform must be
// matched; its snapshotter, if named, must be the configured one, else
// the default snapshotter is preferred over the others that match.
func (s *Service) unpackPlatform(r transfer.UnpackConfiguration) (unpack.Platform, bool) {
	var found *unpack.Platform
	for i := range s.config.UnpackPlatforms {
		up := &s.config.UnpackPlatforms[i]
		if !up.Platform.Match(r.Platform) {
			continue
		}
		switch {
		case r.Snapshotter == up.SnapshotterKey:
			return *up, true
		case r.Snapshotter == "" && up.SnapshotterKey == s.config.DefaultSnapshotter:
			return *up, true
		case r.Snapshotter == "" && found == nil:
			found = up
		}
	}
	if found != nil {
		return *found, true
	}
	return unpack.Platform{}, false
}
