package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/reference"
	"github.com/llitfkitfk/containerd/remotes"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ResolverOptions configure a registry resolver.
type ResolverOptions struct {
	// Hosts returns the endpoints to try for a registry host, in order
	// (config.ConfigureHosts reads them from hosts.toml files). Nil: the
	// host itself over https, anonymous.
	Hosts RegistryHosts
	// Headers are sent with every request.
	Headers http.Header
}

// maxManifestSize bounds a manifest or index read into memory.
const maxManifestSize = 4 << 20

// manifestAccept is the Accept header of manifest requests: every
// manifest and index type we understand, then anything, so that a
// registry with something else says so rather than answering 404.
var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageManifest,
	ocispec.MediaTypeImageIndex,
	images.MediaTypeDockerSchema2Manifest,
	images.MediaTypeDockerSchema2ManifestList,
	"*/*",
}, ", ")

// NewResolver returns a Resolver for registries speaking the OCI
// distribution API (and Docker's registry API v2).
//
// The hosts of a registry are looked up once per resolver, so that its
// requests share one connection pool and one token cache per host.
func NewResolver(options ResolverOptions) remotes.Resolver {
	r := &dockerResolver{hostsFn: options.Hosts, header: options.Headers, hosts: map[string][]RegistryHost{}}
	if r.hostsFn == nil {
		client := &http.Client{Transport: DefaultHTTPTransport(nil)}
		auth := NewDockerAuthorizer(WithAuthClient(client))
		r.hostsFn = func(host string) ([]RegistryHost, error) {
			server := host
			if host == "docker.io" {
				server = "registry-1.docker.io"
			}
			return []RegistryHost{{
				Client: client, Authorizer: auth, Host: server, Scheme: "https",
				Path: "/v2", Capabilities: HostCapabilityAll,
			}}, nil
		}
	}
	if r.header == nil {
		r.header = http.Header{}
	}
	if r.header.Get("User-Agent") == "" {
		r.header = r.header.Clone()
		r.header.Set("User-Agent", "containerd/2")
	}
	return r
}

type dockerResolver struct {
	hostsFn RegistryHosts
	header  http.Header

	mu    sync.Mutex
	hosts map[string][]RegistryHost
}

// base is what every operation on one repository needs.
type base struct {
	spec       reference.Spec
	repository string // the locator without the host
	hosts      []RegistryHost
	header     http.Header
}

func (r *dockerResolver) base(ref string) (*base, error) {
	spec, err := reference.Parse(ref)
	if err != nil {
		return nil, err
	}
	host := spec.Hostname()
	repository := strings.TrimPrefix(spec.Locator, host+"/")
	if repository == "" || repository == spec.Locator {
		return nil, fmt.Errorf("%q has no repository: %w", ref, reference.ErrInvalid)
	}

	r.mu.Lock()
	hosts, ok := r.hosts[host]
	r.mu.Unlock()
	if !ok {
		if hosts, err = r.hostsFn(host); err != nil {
			return nil, err
		}
		r.mu.Lock()
		if cached, ok := r.hosts[host]; ok {
			hosts = cached // another caller was first: share its clients
		} else {
			r.hosts[host] = hosts
		}
		r.mu.Unlock()
	}
	return &base{spec: spec, repository: repository, hosts: hosts, header: r.header}, nil
}

// filterHosts returns the hosts allowed to do caps, in order.
func (b *base) filterHosts(caps HostCapabilities) []RegistryHost {
	var out []RegistryHost
	for _, h := range b.hosts {
		if h.Capabilities.Has(caps) {
			out = append(out, h)
		}
	}
	return out
}

// noHosts is the error for a registry with no host allowed to do what.
func (b *base) noHosts(what string) error {
	return fmt.Errorf("no host of %s may %s: %w", b.spec.Hostname(), what, errdefs.ErrFailedPrecondition)
}

// request is one HTTP request to a registry host.
type request struct {
	method string
	host   RegistryHost
	url    *url.URL
	header http.Header
	// body, if set, opens the body; replayable bodies may be sent again
	// after an authorization challenge.
	body       func() (io.ReadCloser, error)
	replayable bool
	size       int64
}

// request makes a request to <host path>/<repository>/<ps...>.
func (b *base) request(host RegistryHost, method string, ps ...string) *request {
	header := b.header.Clone()
	for k, v := range host.Header {
		header[k] = slices.Clone(v)
	}
	p := strings.TrimSuffix(host.Path, "/") + "/" + b.repository + "/" + strings.Join(ps, "/")
	u := &url.URL{Scheme: host.Scheme, Host: host.Host, Path: p}
	return &request{method: method, host: host, url: u, header: header}
}

func (r *request) String() string { return r.method + " " + r.url.Redacted() }

// do sends the request, answering one authorization challenge. A second
// 401 means the credentials (or the token they bought) were refused.
func (r *request) do(ctx context.Context) (*http.Response, error) {
	client := r.host.Client
	if client == nil {
		client = http.DefaultClient
	}
	var responses []*http.Response
	for {
		var body io.ReadCloser
		if r.body != nil {
			var err error
			if body, err = r.body(); err != nil {
				return nil, err
			}
		}
		req, err := http.NewRequestWithContext(ctx, r.method, r.url.String(), body)
		if err != nil {
			if body != nil {
				body.Close()
			}
			return nil, fmt.Errorf("%s: %w", r, err)
		}
		req.Header = r.header.Clone()
		if body != nil {
			req.ContentLength = r.size
		}
		// Credentials go only to the host they are for, not to wherever
		// a Location header points.
		auth := r.host.Authorizer
		if auth != nil && req.URL.Host == r.host.Host {
			if err := auth.Authorize(ctx, req); err != nil {
				if body != nil {
					body.Close()
				}
				return nil, err
			}
		} else {
			auth = nil
		}
		log.G(ctx).WithField("request", r.String()).Debug("registry request")
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s: %w", r, ctx.Err())
			}
			// url.Error repeats the method and URL this message starts with.
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err
			}
			return nil, fmt.Errorf("%s: %w: %w", r, err, errdefs.ErrUnavailable)
		}
		if resp.StatusCode != http.StatusUnauthorized || auth == nil {
			return resp, nil
		}
		responses = append(responses, resp)
		if len(responses) == 1 && (r.body == nil || r.replayable) {
			discard(resp)
			if err := auth.AddResponses(ctx, responses); err != nil {
				return nil, err
			}
			continue
		}
		// Refused with what the challenge asked for: forget it, so a
		// later request starts afresh, and say why.
		_ = auth.AddResponses(ctx, responses)
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		msg, _ := describeResponse(resp.StatusCode, data)
		return nil, fmt.Errorf("authorization failed for %s: %s answered %s%s: %w", r.host.Host, r, resp.Status, msg, errdefs.ErrUnauthenticated)
	}
}

// discard reads a little of an unwanted body, so that the connection can
// be reused, and closes it.
func discard(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// Resolve asks the registry hosts allowed to resolve, in order, for the
// manifest or index ref names: a HEAD first, then a GET when the HEAD
// does not tell its digest, size and media type.
func (r *dockerResolver) Resolve(ctx context.Context, ref string) (string, ocispec.Descriptor, error) {
	b, err := r.base(ref)
	if err != nil {
		return "", ocispec.Descriptor{}, err
	}
	tag, dgst := reference.SplitObject(b.spec.Object)
	if tag == "" && dgst == "" {
		return "", ocispec.Descriptor{}, fmt.Errorf("resolve %q: %w", ref, reference.ErrObjectRequired)
	}
	object, caps := tag, HostCapabilityResolve
	if dgst != "" {
		if err := dgst.Validate(); err != nil {
			return "", ocispec.Descriptor{}, fmt.Errorf("resolve %q: digest: %v: %w", ref, err, errdefs.ErrInvalidArgument)
		}
		// By digest the answer can be checked, so a mirror may give it.
		object, caps = dgst.String(), HostCapabilityPull
	}
	hosts := b.filterHosts(caps)
	if len(hosts) == 0 {
		return "", ocispec.Descriptor{}, b.noHosts("resolve " + ref)
	}
	ctx = withScopes(ctx, repositoryScope(b.repository, false))

	var firstErr error
	for _, host := range hosts {
		desc, err := b.resolveAt(ctx, host, object, dgst)
		if err == nil {
			return ref, desc, nil
		}
		if ctx.Err() != nil {
			return "", ocispec.Descriptor{}, err
		}
		log.G(ctx).WithError(err).WithField("host", host.Host).Debug("resolve: trying next host")
		// A host that failed outright says more than one that has not
		// got the image.
		if firstErr == nil || errdefs.IsNotFound(firstErr) && !errdefs.IsNotFound(err) {
			firstErr = err
		}
	}
	if errdefs.IsNotFound(firstErr) {
		return "", ocispec.Descriptor{}, fmt.Errorf("%s: %w", ref, firstErr)
	}
	return "", ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", ref, firstErr)
}

func (b *base) resolveAt(ctx context.Context, host RegistryHost, object string, dgst digest.Digest) (ocispec.Descriptor, error) {
	req := b.request(host, http.MethodHead, "manifests", object)
	req.header.Set("Accept", manifestAccept)
	desc, err := b.headManifest(ctx, req, dgst)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if desc.Digest == "" || desc.Size <= 0 || !knownManifestType(desc.MediaType) {
		// The HEAD was not enough (or not allowed): read the manifest
		// and see.
		req.method = http.MethodGet
		if desc, err = b.getManifest(ctx, req, dgst); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	if err := checkManifestType(desc.MediaType); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("%s: %w", req, err)
	}
	return desc, nil
}

// headManifest describes a manifest from a HEAD's headers, as far as
// they go; a registry that does not allow HEAD describes nothing.
func (b *base) headManifest(ctx context.Context, req *request, dgst digest.Digest) (ocispec.Descriptor, error) {
	resp, err := req.do(ctx)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusNotImplemented {
		discard(resp)
		return ocispec.Descriptor{}, nil
	}
	if resp.StatusCode/100 != 2 {
		return ocispec.Descriptor{}, responseError(req.String(), resp)
	}
	resp.Body.Close()

	desc := ocispec.Descriptor{
		MediaType: contentType(resp.Header),
		Size:      resp.ContentLength,
	}
	if d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest")); err == nil {
		desc.Digest = d
	}
	if dgst != "" && desc.Digest != "" && desc.Digest != dgst {
		return ocispec.Descriptor{}, fmt.Errorf("%s: registry says the manifest is %s: %w", req, desc.Digest, errdefs.ErrFailedPrecondition)
	}
	return desc, nil
}

// getManifest GETs a manifest and describes it from its bytes.
func (b *base) getManifest(ctx context.Context, req *request, dgst digest.Digest) (ocispec.Descriptor, error) {
	resp, err := req.do(ctx)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if resp.StatusCode/100 != 2 {
		return ocispec.Descriptor{}, responseError(req.String(), resp)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestSize+1))
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("%s: read manifest: %w: %w", req, err, errdefs.ErrUnavailable)
	}
	if len(data) > maxManifestSize {
		return ocispec.Descriptor{}, fmt.Errorf("%s: manifest larger than %d bytes: %w", req, maxManifestSize, errdefs.ErrInvalidArgument)
	}
	alg := digest.Canonical
	if dgst != "" {
		alg = dgst.Algorithm()
	}
	desc := ocispec.Descriptor{
		MediaType: contentType(resp.Header),
		Digest:    alg.FromBytes(data),
		Size:      int64(len(data)),
	}
	if dgst != "" && desc.Digest != dgst {
		return ocispec.Descriptor{}, fmt.Errorf("%s: the manifest's digest is %s: %w", req, desc.Digest, errdefs.ErrFailedPrecondition)
	}
	if genericType(desc.MediaType) {
		desc.MediaType = sniffManifestType(data, desc.MediaType)
	}
	return desc, nil
}

// contentType is a response's media type without parameters.
func contentType(h http.Header) string {
	mt, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return strings.TrimSpace(mt)
}

func knownManifestType(mt string) bool {
	return images.IsManifestType(mt) || images.IsIndexType(mt)
}

// checkManifestType refuses what Resolve must not return.
func checkManifestType(mt string) error {
	switch {
	case knownManifestType(mt):
		return nil
	case mt == images.MediaTypeDockerSchema1Manifest || mt == "application/vnd.docker.distribution.manifest.v1+json":
		return fmt.Errorf("docker schema 1 manifests are not supported: %w", errdefs.ErrNotImplemented)
	case mt == "":
		return fmt.Errorf("the registry did not say what media type the manifest is: %w", errdefs.ErrNotImplemented)
	}
	return fmt.Errorf("unsupported manifest media type %q: %w", mt, errdefs.ErrNotImplemented)
}

// genericType reports whether a registry served a manifest as no type in
// particular, which leaves its type to be read from its bytes. A type it
// does name is taken at its word, and refused if unknown.
func genericType(mt string) bool {
	switch mt {
	case "", "application/json", "text/plain", "application/octet-stream", "binary/octet-stream":
		return true
	}
	return false
}

// sniffManifestType guesses the media type of a manifest served as
// plain JSON (or untyped), from its own mediaType field or its shape.
func sniffManifestType(data []byte, served string) string {
	var m struct {
		MediaType     string          `json:"mediaType"`
		SchemaVersion int             `json:"schemaVersion"`
		Config        json.RawMessage `json:"config"`
		Manifests     json.RawMessage `json:"manifests"`
		FSLayers      json.RawMessage `json:"fsLayers"`
	}
	if json.Unmarshal(bytes.TrimSpace(data), &m) != nil {
		return served
	}
	switch {
	case m.MediaType != "":
		return m.MediaType
	case m.Manifests != nil:
		return ocispec.MediaTypeImageIndex
	case m.Config != nil:
		return ocispec.MediaTypeImageManifest
	case m.FSLayers != nil || m.SchemaVersion == 1:
		return images.MediaTypeDockerSchema1Manifest
	}
	return served
}

// Fetcher returns a Fetcher for ref's repository on the hosts allowed to
// pull.
func (r *dockerResolver) Fetcher(ctx context.Context, ref string) (remotes.Fetcher, error) {
	b, err := r.base(ref)
	if err != nil {
		return nil, err
	}
	return &fetcher{base: b}, nil
}

// Pusher returns a Pusher to ref's repository on its first host allowed
// to push.
func (r *dockerResolver) Pusher(ctx context.Context, ref string) (remotes.Pusher, error) {
	b, err := r.base(ref)
	if err != nil {
		return nil, err
	}
	hosts := b.filterHosts(HostCapabilityPush)
	if len(hosts) == 0 {
		return nil, b.noHosts("push " + ref)
	}
	tag, _ := reference.SplitObject(b.spec.Object)
	return &pusher{base: b, host: hosts[0], tag: tag, dgst: b.spec.Digest()}, nil
}

// parseContentRange returns the first byte of a "bytes first-last/size"
// Content-Range.
func parseContentRange(v string) (int64, bool) {
	v, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(v, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
	return n, err == nil && n >= 0
}
