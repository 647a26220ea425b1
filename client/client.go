// Package client is the Go client of the daemon: it connects to its gRPC
// socket and gives programs typed access to every service the daemon
// serves, and the flows they are used for (pull, import, run a container).
// It is shaped like containerd's own client, so a program written against
// containerd's reads the same here.
package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/namespaces"
)

// DefaultSnapshotter is the snapshotter used when none is named, as in
// containerd's client.
const DefaultSnapshotter = "overlayfs"

// DefaultRuntime is the runtime used when none is named.
const DefaultRuntime = "io.containerd.runc.v2"

// Client is a connection to the daemon. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
	// cc is conn with the default namespace added to calls whose context
	// names none; every service of the client is made on it.
	cc               grpc.ClientConnInterface
	defaultNamespace string
	// runtime and snapshotter are the defaults of containers and unpacks
	// made through this client.
	runtime     string
	snapshotter string
}

// Opt sets an option of New.
type Opt func(*clientOpts) error

type clientOpts struct {
	defaultNamespace string
	defaultRuntime   string
	timeout          time.Duration
	dialOptions      []grpc.DialOption
	callOptions      []grpc.CallOption
}

// WithDefaultNamespace is the namespace of calls whose context names none.
func WithDefaultNamespace(ns string) Opt {
	return func(o *clientOpts) error { o.defaultNamespace = ns; return nil }
}

// WithDefaultRuntime is the runtime of containers created without one.
func WithDefaultRuntime(rt string) Opt {
	return func(o *clientOpts) error { o.defaultRuntime = rt; return nil }
}

// WithTimeout bounds how long New waits for the connection.
func WithTimeout(d time.Duration) Opt {
	return func(o *clientOpts) error { o.timeout = d; return nil }
}

// WithDialOpts adds gRPC dial options.
func WithDialOpts(opts []grpc.DialOption) Opt {
	return func(o *clientOpts) error { o.dialOptions = append(o.dialOptions, opts...); return nil }
}

// New connects to the daemon's socket at address ("unix://" optional) and
// waits until the connection is up: a daemon that is not there is an error
// of New, naming the address, rather than of the first call. The wait is
// WithTimeout's, 10 seconds by default as in containerd 1.6's client.
func New(address string, opts ...Opt) (*Client, error) {
	var o clientOpts
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.timeout <= 0 {
		o.timeout = defaultConnectTimeout
	}
	path := strings.TrimPrefix(address, "unix://")
	if path == "" {
		return nil, fmt.Errorf("no address given: %w", errdefs.ErrInvalidArgument)
	}

	var d dialer
	gopts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(d.dial),
		// gRPC's default backoff starts at a second; a client started
		// with its daemon would wait that long for a socket that appears
		// a few milliseconds later.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  50 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   2 * time.Second,
			},
			MinConnectTimeout: o.timeout,
		}),
	}
	gopts = append(gopts, o.dialOptions...)
	conn, err := grpc.NewClient(unixTarget(path), withClientDefaults(gopts, &o)...)
	if err != nil {
		return nil, fmt.Errorf("failed to dial %q: %w", address, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if err := waitReady(ctx, conn, &d); err != nil {
		conn.Close()
		if last := d.lastError(); last != nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("failed to dial %q: %w (last error: %v)", address, err, last)
		}
		return nil, fmt.Errorf("failed to dial %q: %w", address, err)
	}
	return newClient(conn, &o), nil
}

const defaultConnectTimeout = 10 * time.Second

// unixTarget is the gRPC target of a socket path: gRPC's unix resolver
// takes "unix:///abs" and "unix:rel".
func unixTarget(path string) string {
	if filepath.IsAbs(path) {
		return "unix://" + path
	}
	return "unix:" + path
}

// dialer dials the socket and keeps the last failure, which says why a
// connection that timed out never came up (no such file, refused).
type dialer struct {
	mu   sync.Mutex
	last error
}

func (d *dialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	// gRPC hands a custom dialer the target as it was given.
	addr = strings.TrimPrefix(addr, "unix://")
	addr = strings.TrimPrefix(addr, "unix:")
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, "unix", addr)
	d.mu.Lock()
	d.last = err
	d.mu.Unlock()
	return conn, err
}

func (d *dialer) lastError() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

// waitReady starts conn connecting and waits until it is ready. A socket
// that is missing or that no one listens on fails at once, as in
// containerd's client: no daemon is there, and waiting out the timeout
// would only delay saying so.
func waitReady(ctx context.Context, conn *grpc.ClientConn, d *dialer) error {
	conn.Connect()
	for {
		s := conn.GetState()
		switch s {
		case connectivity.Ready:
			return nil
		case connectivity.Shutdown:
			return fmt.Errorf("connection closed: %w", errdefs.ErrUnavailable)
		case connectivity.Idle:
			conn.Connect()
		case connectivity.TransientFailure:
			if last := d.lastError(); errors.Is(last, syscall.ENOENT) || errors.Is(last, syscall.ECONNREFUSED) {
				return fmt.Errorf("%w: %w", errdefs.ErrUnavailable, last)
			}
		}
		if !conn.WaitForStateChange(ctx, s) {
			return ctx.Err()
		}
	}
}

// withClientDefaults adds what every connection of the client needs: room
// for large messages (content chunks, big listings) and a namespace in the
// metadata of every call (see withDefaultNamespace).
func withClientDefaults(gopts []grpc.DialOption, o *clientOpts) []grpc.DialOption {
	gopts = append(gopts, grpc.WithDefaultCallOptions(
		grpc.MaxCallRecvMsgSize(MaxMsgSize),
		grpc.MaxCallSendMsgSize(MaxMsgSize)))
	if len(o.callOptions) > 0 {
		gopts = append(gopts, grpc.WithDefaultCallOptions(o.callOptions...))
	}
	ns := o.defaultNamespace
	gopts = append(gopts,
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(withDefaultNamespace(ctx, ns), method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(withDefaultNamespace(ctx, ns), desc, cc, method, opts...)
		}))
	return gopts
}

// MaxMsgSize is the largest message the client sends or receives, as in
// containerd's client (16 MiB).
const MaxMsgSize = 16 << 20

// withDefaultNamespace makes sure a call names its namespace in its
// metadata: the one ctx names (bound, or of the request ctx is serving),
// else ns; with neither, the daemon will say one is needed.
func withDefaultNamespace(ctx context.Context, ns string) context.Context {
	if md, ok := metadata.FromOutgoingContext(ctx); ok && len(md.Get(namespaces.GRPCHeader)) > 0 {
		return ctx
	}
	if bound, ok := namespaces.Namespace(ctx); ok {
		ns = bound
	}
	if ns == "" {
		return ctx
	}
	return namespaces.WithNamespace(ctx, ns)
}

// NewWithConn makes a client on an existing connection. The connection's
// own options stand: the default namespace is applied by the client's
// methods only where they make the context (use a namespaced context, or
// New, for the raw services).
func NewWithConn(conn *grpc.ClientConn, opts ...Opt) (*Client, error) {
	if conn == nil {
		return nil, fmt.Errorf("no connection given: %w", errdefs.ErrInvalidArgument)
	}
	var o clientOpts
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	return newClient(conn, &o), nil
}

func newClient(conn *grpc.ClientConn, o *clientOpts) *Client {
	c := &Client{
		conn:             conn,
		cc:               namespacedConn{conn, o.defaultNamespace},
		defaultNamespace: o.defaultNamespace,
		runtime:          o.defaultRuntime,
		snapshotter:      DefaultSnapshotter,
	}
	if c.runtime == "" {
		c.runtime = DefaultRuntime
	}
	return c
}

// Conn is the client's gRPC connection.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Version is the daemon's version and revision.
type Version struct {
	Version  string
	Revision string
}

// DiffService applies and computes layer diffs in the daemon.
type DiffService interface {
	diff.Applier
	diff.Comparer
}

// EventService publishes, forwards and subscribes to the daemon's events.
type EventService interface {
	events.Publisher
	events.Forwarder
	events.Subscriber
}

// Version asks the daemon for its version.
func (c *Client) Version(ctx context.Context) (Version, error) {
	resp, err := c.VersionService().Version(ctx, &emptypb.Empty{})
	if err != nil {
		return Version{}, errdefs.FromGRPC(err)
	}
	return Version{Version: resp.Version, Revision: resp.Revision}, nil
}

// ServerInfo is what the daemon says of itself (introspection Server).
type ServerInfo struct {
	UUID string
	Pid  uint64
}

// Server asks the daemon for its identity.
func (c *Client) Server(ctx context.Context) (ServerInfo, error) {
	resp, err := c.IntrospectionService().Server(ctx, &emptypb.Empty{})
	if err != nil {
		return ServerInfo{}, errdefs.FromGRPC(err)
	}
	return ServerInfo{UUID: resp.Uuid, Pid: resp.Pid}, nil
}

// IsServing reports whether the daemon answers its health check.
func (c *Client) IsServing(ctx context.Context) (bool, error) {
	resp, err := healthpb.NewHealthClient(c.cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return false, errdefs.FromGRPC(err)
	}
	return resp.Status == healthpb.HealthCheckResponse_SERVING, nil
}

// leaseExpiration is how long a lease made by WithLease lasts unless
// released, as in containerd's client.
const leaseExpiration = 24 * time.Hour

// WithLease returns a context under a lease made for it (unless ctx
// already carries one) and the function that releases it; what is written
// under the lease is safe from garbage collection until then. Options are
// the lease's; by default it has a random id and expires after a day, so a
// crashed client's lease does not hold content forever.
func (c *Client) WithLease(ctx context.Context, opts ...leases.Opt) (context.Context, func(context.Context) error, error) {
	if _, ok := leases.FromContext(ctx); ok {
		return ctx, func(context.Context) error { return nil }, nil
	}
	id, err := randomLeaseID()
	if err != nil {
		return nil, nil, err
	}
	opts = append([]leases.Opt{leases.WithID(id), leases.WithExpiration(leaseExpiration)}, opts...)
	manager := c.LeasesService()
	l, err := manager.Create(ctx, opts...)
	if err != nil {
		return nil, nil, err
	}
	release := func(ctx context.Context) error {
		return manager.Delete(ctx, l)
	}
	return leases.WithLease(ctx, l.ID), release, nil
}

// randomLeaseID is a lease id unique enough to never collide: the time
// and random bytes, as containerd's client makes them.
func randomLeaseID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("lease id: %w", err)
	}
	return fmt.Sprintf("%d-%s", time.Now().UnixNano(), base64.RawURLEncoding.EncodeToString(b[:])), nil
}
