// Package registry is the OCIRegistry transfer object: an image reference
// in a registry, as a source (pull) or a destination (push). The client
// sends how to reach the registry (hosts.toml directory, default scheme,
// headers) and, for credentials, the id of a stream on which the daemon
// asks it for them host by host; secrets never travel in the request.
package registry

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"google.golang.org/protobuf/types/known/anypb"

	transfertypes "github.com/llitfkitfk/containerd/api/types/transfer"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/reference/docker"
	"github.com/llitfkitfk/containerd/remotes"
	dockerremote "github.com/llitfkitfk/containerd/remotes/docker"
	"github.com/llitfkitfk/containerd/remotes/docker/config"
	"github.com/llitfkitfk/containerd/streaming"
	"github.com/llitfkitfk/containerd/transfer"
	"github.com/llitfkitfk/containerd/transfer/plugins"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func init() {
	plugins.Register(&transfertypes.OCIRegistry{}, &OCIRegistry{})
}

var (
	_ transfer.ImageFetcher = (*OCIRegistry)(nil)
	_ transfer.ImagePusher  = (*OCIRegistry)(nil)
)

// Credentials are what a client answers for a host.
type Credentials struct {
	Host     string
	Username string
	// Secret is the password, or a refresh token when Username is empty.
	Secret string
	// Header is a whole Authorization header value, used instead.
	Header string
}

// CredentialHelper finds the credentials for a host.
type CredentialHelper interface {
	GetCredentials(ctx context.Context, ref, host string) (Credentials, error)
}

// OCIRegistry is an image in a registry.
type OCIRegistry struct {
	reference     string
	headers       http.Header
	hostDir       string
	defaultScheme string
	creds         CredentialHelper

	// The resolver is made on first use, with the context of that use's
	// call, so that an object only inspected costs nothing.
	resolverOnce sync.Once
	resolver     remotes.Resolver
}

// Options are how to reach the registry of an OCIRegistry made in process.
type Options struct {
	Headers       http.Header
	HostDir       string // root of per-host hosts.toml directories
	DefaultScheme string
	Credentials   CredentialHelper
}

// New returns the OCIRegistry for ref, which is normalised as docker
// does ("alpine" is docker.io/library/alpine:latest).
func New(ref string, opts Options) *OCIRegistry {
	return &OCIRegistry{
		reference:     normalize(ref),
		headers:       opts.Headers,
		hostDir:       opts.HostDir,
		defaultScheme: opts.DefaultScheme,
		creds:         opts.Credentials,
	}
}

func (r *OCIRegistry) String() string { return fmt.Sprintf("OCI Registry (%s)", r.reference) }

// Image returns the reference.
func (r *OCIRegistry) Image() string { return r.reference }

// Headers are the HTTP headers sent to the registry.
func (r *OCIRegistry) Headers() http.Header { return r.headers }

// HostDir is the root of the hosts.toml directories; "" for none.
func (r *OCIRegistry) HostDir() string { return r.hostDir }

// DefaultScheme is the scheme of hosts with no configuration.
func (r *OCIRegistry) DefaultScheme() string { return r.defaultScheme }

// CredentialHelper answers for the registry's credentials; nil when the
// client offered none.
func (r *OCIRegistry) CredentialHelper() CredentialHelper { return r.creds }

func (r *OCIRegistry) getResolver(ctx context.Context) remotes.Resolver {
	r.resolverOnce.Do(func() { r.resolver = r.newResolver(ctx) })
	return r.resolver
}

// Resolve returns the reference's name and the descriptor it names.
func (r *OCIRegistry) Resolve(ctx context.Context) (string, ocispec.Descriptor, error) {
	return r.getResolver(ctx).Resolve(ctx, r.reference)
}

// Fetcher reads content of ref's repository.
func (r *OCIRegistry) Fetcher(ctx context.Context, ref string) (remotes.Fetcher, error) {
	return r.getResolver(ctx).Fetcher(ctx, ref)
}

// Pusher writes to the reference's repository. A reference without a
// digest gets desc's, so that the pusher knows the manifest that the tag
// is to point at.
func (r *OCIRegistry) Pusher(ctx context.Context, desc ocispec.Descriptor) (remotes.Pusher, error) {
	ref := r.reference
	if !strings.Contains(ref, "@") {
		ref += "@" + desc.Digest.String()
	}
	return r.getResolver(ctx).Pusher(ctx, ref)
}

// UnmarshalAny reads a containerd.types.transfer.OCIRegistry; an
// auth_stream it names must be open.
func (r *OCIRegistry) UnmarshalAny(ctx context.Context, sg streaming.StreamGetter, a *anypb.Any) error {
	var s transfertypes.OCIRegistry
	if err := a.UnmarshalTo(&s); err != nil {
		return fmt.Errorf("OCIRegistry: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if s.GetReference() == "" {
		return fmt.Errorf("OCIRegistry: reference is required: %w", errdefs.ErrInvalidArgument)
	}
	r.reference = normalize(s.GetReference())
	if res := s.GetResolver(); res != nil {
		r.hostDir = res.GetHostDir()
		r.defaultScheme = res.GetDefaultScheme()
		switch scheme := r.defaultScheme; scheme {
		case "", "http", "https":
		default:
			return fmt.Errorf("OCIRegistry: default scheme %q is neither http nor https: %w", scheme, errdefs.ErrInvalidArgument)
		}
		if len(res.GetHeaders()) > 0 {
			r.headers = http.Header{}
			for k, v := range res.GetHeaders() {
				r.headers.Add(k, v)
			}
		}
		if id := res.GetAuthStream(); id != "" {
			stream, err := sg.Get(ctx, id)
			if err != nil {
				return fmt.Errorf("OCIRegistry: auth stream: %w", err)
			}
			r.creds = &streamCredentials{stream: stream}
		}
		if res.GetHttpDebug() != transfertypes.HTTPDebug_DISABLED {
			log.G(ctx).WithField("ref", r.reference).Debug("registry HTTP debugging was asked for; it is not supported and is ignored")
		}
		// A client asking for HTTP debug output waits for its end; end it
		// at once, empty.
		if id := res.GetLogsStream(); id != "" {
			stream, err := sg.Get(ctx, id)
			if err != nil {
				return fmt.Errorf("OCIRegistry: logs stream: %w", err)
			}
			stream.Close()
		}
	}
	return nil
}

func (r *OCIRegistry) newResolver(ctx context.Context) remotes.Resolver {
	opts := config.HostOptions{DefaultScheme: r.defaultScheme}
	if r.hostDir != "" {
		opts.HostDir = config.HostDirFromRoot(r.hostDir)
	}
	if creds := r.creds; creds != nil {
		ref := r.reference
		opts.Credentials = func(host string) (string, string, error) {
			c, err := creds.GetCredentials(ctx, ref, host)
			if err != nil {
				return "", "", err
			}
			return c.Username, c.Secret, nil
		}
	}
	if r.headers != nil {
		opts.AuthorizerOpts = []dockerremote.AuthorizerOpt{dockerremote.WithAuthHeader(r.headers)}
	}
	return dockerremote.NewResolver(dockerremote.ResolverOptions{
		Hosts:   config.ConfigureHosts(ctx, opts),
		Headers: r.headers,
	})
}

// normalize returns ref as docker would read it, or ref itself when it
// does not parse (the resolver then says what is wrong with it).
func normalize(ref string) string {
	n, err := docker.ParseDockerRef(ref)
	if err != nil {
		return ref
	}
	return n.String()
}

// streamCredentials asks the client for credentials over its auth stream:
// an AuthRequest out, an AuthResponse back. One question at a time, since
// answers are matched to questions by order.
type streamCredentials struct {
	mu     sync.Mutex
	stream streaming.Stream
}

func (sc *streamCredentials) GetCredentials(ctx context.Context, ref, host string) (Credentials, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	req, err := streaming.MarshalAny(&transfertypes.AuthRequest{Host: host, Reference: ref})
	if err != nil {
		return Credentials{}, err
	}
	if err := sc.stream.Send(req); err != nil {
		return Credentials{}, fmt.Errorf("ask client for credentials for %s: %w", host, err)
	}
	a, err := sc.stream.Recv()
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials for %s from client: %w", host, err)
	}
	var resp transfertypes.AuthResponse
	if err := a.UnmarshalTo(&resp); err != nil {
		return Credentials{}, fmt.Errorf("credentials for %s from client: %v: %w", host, err, errdefs.ErrInvalidArgument)
	}
	creds := Credentials{Host: host}
	switch resp.GetAuthType() {
	case transfertypes.AuthType_CREDENTIALS:
		creds.Username, creds.Secret = resp.GetUsername(), resp.GetSecret()
	case transfertypes.AuthType_REFRESH:
		creds.Secret = resp.GetSecret()
	case transfertypes.AuthType_HEADER:
		creds.Header = resp.GetSecret()
	}
	return creds, nil
}
