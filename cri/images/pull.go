package images

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/reference/docker"
	"github.com/llitfkitfk/containerd/remotes"
	dockerremote "github.com/llitfkitfk/containerd/remotes/docker"
	hostsconfig "github.com/llitfkitfk/containerd/remotes/docker/config"
	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/unpack"
)

// runtimeHandlerAnnotation is the sandbox annotation older kubelets name
// the pod's runtime handler with, before PullImageRequest's image spec
// carried it.
const runtimeHandlerAnnotation = "io.containerd.cri.runtime-handler"

// pullLeaseExpiry bounds how long a pull's lease outlives a daemon that
// died mid-pull.
const pullLeaseExpiry = 24 * time.Hour

// PullImage pulls an image for the host's platform and unpacks it into
// the snapshotter of the runtime handler the request names; the answer
// is the image id.
func (s *Service) PullImage(ctx context.Context, r *runtime.PullImageRequest) (*runtime.PullImageResponse, error) {
	handler := r.GetImage().GetRuntimeHandler()
	if handler == "" {
		handler = r.GetSandboxConfig().GetAnnotations()[runtimeHandlerAnnotation]
	}
	img, err := s.Pull(ctx, r.GetImage().GetImage(), r.GetAuth(), handler)
	if err != nil {
		return nil, pullError(err)
	}
	return &runtime.PullImageResponse{ImageRef: img.ID}, nil
}

// pullError is the gRPC status of a failed pull. A registry that cannot
// be reached or refuses the credentials is Unknown, as in containerd's
// CRI: Unavailable, Unauthenticated and PermissionDenied would read as
// the CRI's own socket or caller being at fault.
func pullError(err error) error {
	if errdefs.IsUnavailable(err) || errdefs.IsUnauthenticated(err) || errdefs.IsPermissionDenied(err) {
		return status.Error(codes.Unknown, err.Error())
	}
	return errdefs.ToGRPC(err)
}

// Pull pulls ref with auth (nil: the credentials the config has for the
// registry) into the runtime handler's snapshotter, and records it under
// its name, digest reference and id.
func (s *Service) Pull(ctx context.Context, ref string, auth *runtime.AuthConfig, runtimeHandler string) (Image, error) {
	ctx = withNamespace(ctx)
	named, err := docker.ParseDockerRef(ref)
	if err != nil {
		return Image{}, fmt.Errorf("failed to parse image reference %q: %w", ref, err)
	}
	name := named.String()
	if s.deps.Leases == nil || s.deps.Applier == nil {
		return Image{}, fmt.Errorf("pull %s: this image service has no lease manager or layer applier: %w", name, errdefs.ErrFailedPrecondition)
	}
	snName := s.Snapshotter(runtimeHandler)
	sn, ok := s.deps.Snapshotters[snName]
	if !ok {
		return Image{}, fmt.Errorf("pull %s: snapshotter %q (of runtime handler %q) is not loaded: %w", name, snName, runtimeHandler, errdefs.ErrFailedPrecondition)
	}
	start := time.Now()

	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	progress := &pullProgress{}
	if timeout := config.Duration(s.config.ImagePullProgressTimeout); timeout > 0 {
		go progress.watch(pctx, name, timeout, cancel)
	}
	update := progress.wrap
	if tokenAuth := registryTokenAuth(auth); tokenAuth != nil {
		update = func(c *http.Client) error {
			tokenAuth.wrap(c)
			return progress.wrap(c)
		}
	}
	resolver := dockerremote.NewResolver(dockerremote.ResolverOptions{
		Hosts:   s.registryHosts(pctx, s.credentials(auth), update),
		Headers: s.config.Registry.Headers,
	})

	// The pull's lease holds what it fetches and unpacks until the
	// records that keep them are made; then only what they reference
	// stays, so a failed pull leaves nothing to be seen, and its blobs
	// to the garbage collector.
	l, err := s.deps.Leases.Create(ctx, leases.WithExpiration(pullLeaseExpiry), leases.WithLabels(map[string]string{
		"containerd.io/cri.image-pull": name,
	}))
	if err != nil {
		return Image{}, fmt.Errorf("create lease: %w", err)
	}
	defer func() {
		if err := s.deps.Leases.Delete(leases.WithoutLease(context.WithoutCancel(ctx)), l); err != nil {
			log.G(ctx).WithError(err).WithField("lease", l.ID).Warn("CRI: releasing a pull's lease")
		}
	}()

	desc, err := s.fetch(leases.WithLease(pctx, l.ID), resolver, l, name, snName, sn)
	if err != nil {
		if cause := context.Cause(pctx); cause != nil && ctx.Err() == nil {
			err = cause
		}
		return Image{}, fmt.Errorf("failed to pull and unpack image %q: %w", name, err)
	}

	configDesc, err := images.Config(ctx, s.deps.Content, desc, s.platform)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", name, err)
	}
	id := configDesc.Digest.String()
	// The names containerd's CRI gives a pulled image: its id, the tag
	// pulled (if one was), and its repository at the digest pulled.
	names := []string{id}
	if named.Tag() != "" {
		names = append(names, name)
	}
	if named.Digest() != "" {
		names = append(names, name)
	} else {
		names = append(names, named.TrimNamed().String()+"@"+desc.Digest.String())
	}
	labels := s.labels(name)
	for _, n := range names {
		if err := s.createOrUpdate(ctx, n, desc, labels); err != nil {
			return Image{}, fmt.Errorf("failed to create image reference %q: %w", n, err)
		}
		if err := s.Update(ctx, n); err != nil {
			return Image{}, err
		}
	}
	s.fsChanged()
	img, err := s.cache.get(id)
	if err != nil {
		return Image{}, err
	}
	log.G(ctx).WithField("image", name).WithField("id", id).WithField("bytes", progress.bytes.Load()).
		WithField("elapsed", time.Since(start)).Info("CRI: pulled image")
	return img, nil
}

// fetch resolves name and fetches what the host's platform uses of it
// into the content store, under lease l (which ctx carries), unpacking
// its layers into sn as they arrive.
func (s *Service) fetch(ctx context.Context, resolver remotes.Resolver, l leases.Lease, name, snName string, sn snapshots.Snapshotter) (ocispec.Descriptor, error) {
	resolved, desc, err := resolver.Resolve(ctx, name)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if desc.MediaType == images.MediaTypeDockerSchema1Manifest {
		return ocispec.Descriptor{}, fmt.Errorf("%s: docker schema 1 manifests are not supported: %w", resolved, errdefs.ErrNotImplemented)
	}
	fetcher, err := resolver.Fetcher(ctx, resolved)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	u, err := unpack.NewUnpacker(ctx, s.deps.Content, unpack.WithUnpackPlatform(unpack.Platform{
		Platform:                s.platform,
		SnapshotterKey:          snName,
		Snapshotter:             sn,
		Applier:                 s.deps.Applier,
		SnapshotterCapabilities: s.deps.SnapshotterCapabilities[snName],
	}))
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	cs := s.deps.Content
	children := images.LimitManifests(images.FilterPlatforms(images.ChildrenHandler(cs), s.platform), s.platform, 1)
	labelMap := images.ChildGCLabels
	if s.config.Containerd.DiscardUnpackedLayers {
		labelMap = childGCLabelsNoLayers
	}
	handler := u.Unpack(images.Handlers(
		s.fetchHandler(fetcher, l, resolved),
		images.SetChildrenMappedLabels(cs, children, labelMap),
	))
	err = images.Dispatch(ctx, handler, nil, desc)
	// Wait also after a failed walk: the unpacks must end before the
	// lease goes.
	if _, uerr := u.Wait(); err == nil && uerr != nil {
		err = fmt.Errorf("unpack: %w", uerr)
	}
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return desc, nil
}

// childGCLabelsNoLayers is images.ChildGCLabels without the layers: with
// discard_unpacked_layers, the compressed layers are garbage once their
// snapshots exist.
func childGCLabelsNoLayers(desc ocispec.Descriptor) []string {
	if images.IsLayerType(desc.MediaType) {
		return nil
	}
	return images.ChildGCLabels(desc)
}

// fetchHandler copies each blob into the content store, unless it is
// there, in which case the pull's lease takes hold of it so that it
// cannot be collected before the image record refers to it. Blobs
// fetched are labelled with the repository they came from
// (containerd.io/distribution.source.<host>), as containerd does.
func (s *Service) fetchHandler(fetcher remotes.Fetcher, l leases.Lease, name string) images.HandlerFunc {
	var commitOpts []content.Opt
	if r, err := docker.Parse(name); err == nil && r.Domain() != "" {
		commitOpts = append(commitOpts, content.WithLabels(map[string]string{
			images.LabelDistributionSource + "." + r.Domain(): r.Path(),
		}))
	}
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if _, err := s.deps.Content.Info(ctx, desc.Digest); err == nil {
			return nil, s.deps.Leases.AddResource(ctx, l, leases.Resource{ID: desc.Digest.String(), Type: "content"})
		} else if !errdefs.IsNotFound(err) {
			return nil, err
		}
		ctx, release, err := remotes.LimitDownload(ctx, s.downloads, desc)
		if err != nil {
			return nil, err
		}
		defer release()
		if commitOpts != nil {
			ctx = remotes.WithCommitOpts(ctx, commitOpts...)
		}
		return nil, remotes.Fetch(ctx, s.deps.Content, fetcher, desc)
	}
}

// credentials returns the registry credentials of a pull: auth from the
// request if given, else the config's registry.configs.<host>.auth (or
// containerd 1.x's registry.auths).
func (s *Service) credentials(auth *runtime.AuthConfig) func(host string) (string, string, error) {
	return func(host string) (string, string, error) {
		a := auth
		if a == nil {
			a = s.configAuth(host)
		}
		return ParseAuth(a, host)
	}
}

func (s *Service) configAuth(host string) *runtime.AuthConfig {
	if c, ok := s.config.Registry.Configs[host]; ok && c.Auth != nil {
		return toRuntimeAuth(*c.Auth)
	}
	for key, a := range s.config.Registry.Auths {
		h := key
		if u, err := url.Parse(key); err == nil && u.Host != "" {
			h = u.Host
		}
		if h == host {
			return toRuntimeAuth(a)
		}
	}
	return nil
}

func toRuntimeAuth(a config.AuthConfig) *runtime.AuthConfig {
	return &runtime.AuthConfig{Username: a.Username, Password: a.Password, Auth: a.Auth, IdentityToken: a.IdentityToken}
}

// ParseAuth returns the username and secret auth gives for host, as
// containerd's CRI reads them: nothing if auth names another server; a
// username and password; an identity token (the secret, with no
// username); or "auth", base64 of "user:password". A registry token
// alone is not a credential the resolver can use, as in containerd.
func ParseAuth(auth *runtime.AuthConfig, host string) (string, string, error) {
	if auth == nil {
		return "", "", nil
	}
	if auth.ServerAddress != "" {
		server := auth.ServerAddress
		if !strings.Contains(server, "://") {
			server = "dummy://" + server
		}
		u, err := url.Parse(server)
		if err != nil {
			return "", "", fmt.Errorf("auth server address %q: %v: %w", auth.ServerAddress, err, errdefs.ErrInvalidArgument)
		}
		if u.Host != host {
			return "", "", nil
		}
	}
	switch {
	case auth.Username != "":
		return auth.Username, auth.Password, nil
	case auth.IdentityToken != "":
		return "", auth.IdentityToken, nil
	case auth.Auth != "":
		decoded, err := base64.StdEncoding.DecodeString(auth.Auth)
		if err != nil {
			return "", "", fmt.Errorf("auth for %s is not base64: %v: %w", host, err, errdefs.ErrInvalidArgument)
		}
		user, password, ok := strings.Cut(string(decoded), ":")
		if !ok {
			return "", "", fmt.Errorf("auth for %s is not base64 of user:password: %w", host, errdefs.ErrInvalidArgument)
		}
		return user, strings.Trim(password, "\x00"), nil
	}
	return "", "", nil
}

// registryHosts are the hosts a pull tries for a registry: from the
// hosts.toml directories of registry.config_path (a list, as in
// containerd), else those made from the deprecated registry.mirrors and
// registry.configs.<host>.tls, else the registry itself.
func (s *Service) registryHosts(ctx context.Context, creds func(string) (string, string, error), update func(*http.Client) error) dockerremote.RegistryHosts {
	opts := hostsconfig.HostOptions{Credentials: creds, UpdateClient: update}
	if h := s.config.Registry.Headers; len(h) > 0 {
		opts.AuthorizerOpts = []dockerremote.AuthorizerOpt{dockerremote.WithAuthHeader(h)}
	}
	roots := filepath.SplitList(s.config.Registry.ConfigPath)
	if len(roots) == 0 && s.legacyHosts != "" {
		roots = []string{s.legacyHosts}
	}
	if len(roots) > 0 {
		dirs := make([]func(string) (string, error), len(roots))
		for i, root := range roots {
			dirs[i] = hostsconfig.HostDirFromRoot(root)
		}
		opts.HostDir = func(host string) (string, error) {
			for _, dir := range dirs {
				d, err := dir(host)
				if d != "" || err != nil && !errdefs.IsNotFound(err) {
					return d, err
				}
			}
			return "", errdefs.ErrNotFound
		}
	}
	return hostsconfig.ConfigureHosts(ctx, opts)
}

// pullProgress counts a pull's registry requests and the bytes they
// bring, to cancel a pull that has stopped making progress
// (image_pull_progress_timeout), as containerd's CRI does.
type pullProgress struct {
	active atomic.Int32
	bytes  atomic.Uint64
}

// wrap counts the requests of a registry client.
func (p *pullProgress) wrap(c *http.Client) error {
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c.Transport = &countingTransport{rt: rt, p: p}
	return nil
}

// watch cancels the pull once requests have been open for timeout
// without a byte arriving; a pull with no request open (unpacking, or
// between fetches) is making progress of another kind.
func (p *pullProgress) watch(ctx context.Context, name string, timeout time.Duration, cancel context.CancelCauseFunc) {
	interval := min(10*time.Second, timeout/2)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	lastBytes, lastSeen := uint64(0), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		bytes := p.bytes.Load()
		if p.active.Load() == 0 || bytes > lastBytes {
			lastBytes, lastSeen = bytes, time.Now()
			continue
		}
		if time.Since(lastSeen) >= timeout {
			log.G(ctx).WithField("image", name).Errorf("CRI: cancelling the pull: no progress for %s", timeout)
			cancel(fmt.Errorf("image pull made no progress for %s (image_pull_progress_timeout): %w", timeout, errdefs.ErrAborted))
			return
		}
	}
}

type countingTransport struct {
	rt http.RoundTripper
	p  *pullProgress
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.p.active.Add(1)
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		t.p.active.Add(-1)
		return nil, err
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, p: t.p}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	p    *pullProgress
	once sync.Once
}

func (b *countingBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	b.p.bytes.Add(uint64(n))
	return n, err
}

func (b *countingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() { b.p.active.Add(-1) })
	return err
}

// bearerAuth sends a registry token the client already has (the CRI's
// AuthConfig.registry_token) as the bearer token of every request to
// the server it is for (any, if the request names none) that carries no
// authorization of its own; containerd's CRI ignores the field, which
// leaves such pulls anonymous.
type bearerAuth struct {
	token string
	host  string // "": any
}

// registryTokenAuth is the bearerAuth of auth, nil if it has no registry
// token or has credentials the resolver uses instead.
func registryTokenAuth(auth *runtime.AuthConfig) *bearerAuth {
	if auth == nil || auth.RegistryToken == "" || auth.Username != "" || auth.IdentityToken != "" || auth.Auth != "" {
		return nil
	}
	b := &bearerAuth{token: auth.RegistryToken}
	if auth.ServerAddress != "" {
		b.host = hostOf(auth.ServerAddress)
	}
	return b
}

func (b *bearerAuth) wrap(c *http.Client) {
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c.Transport = roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Header.Get("Authorization") == "" && (b.host == "" || req.URL.Host == b.host) {
			req = req.Clone(req.Context())
			req.Header.Set("Authorization", "Bearer "+b.token)
		}
		return rt.RoundTrip(req)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
