// Package client is the Go client of the daemon: it connects to its gRPC
// socket and gives programs typed access to every service the daemon
// serves, and the flows they are used for (pull, import, run a container).
// It is shaped like containerd's own client, so a program written against
// containerd's reads the same here.
package client

import (
	"context"
	"time"

	"google.golang.org/grpc"

	introspectionapi "github.com/llitfkitfk/containerd/api/services/introspection/v1"
	tasksapi "github.com/llitfkitfk/containerd/api/services/tasks/v1"
	versionapi "github.com/llitfkitfk/containerd/api/services/version/v1"
	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/snapshots"
)

// DefaultSnapshotter is the snapshotter used when none is named, as in
// containerd's client.
const DefaultSnapshotter = "overlayfs"

// DefaultRuntime is the runtime used when none is named.
const DefaultRuntime = "io.containerd.runc.v2"

// Client is a connection to the daemon. It is safe for concurrent use.
type Client struct {
	conn             *grpc.ClientConn
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

// New connects to the daemon's socket at address ("unix://" optional).
func New(address string, opts ...Opt) (*Client, error) {
	panic("client.New: not yet implemented")
}

// NewWithConn makes a client on an existing connection.
func NewWithConn(conn *grpc.ClientConn, opts ...Opt) (*Client, error) {
	panic("client.NewWithConn: not yet implemented")
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

// Version asks the daemon for its version.
func (c *Client) Version(ctx context.Context) (Version, error) {
	panic("client.Version: not yet implemented")
}

// ServerInfo is what the daemon says of itself (introspection Server).
type ServerInfo struct {
	UUID string
	Pid  uint64
}

// Server asks the daemon for its identity.
func (c *Client) Server(ctx context.Context) (ServerInfo, error) {
	panic("client.Server: not yet implemented")
}

// IsServing reports whether the daemon answers its health check.
func (c *Client) IsServing(ctx context.Context) (bool, error) {
	panic("client.IsServing: not yet implemented")
}

// ContentStore is the daemon's content store.
func (c *Client) ContentStore() content.Store { panic("client.ContentStore: not yet implemented") }

// ImageService is the daemon's image store.
func (c *Client) ImageService() images.Store { panic("client.ImageService: not yet implemented") }

// ContainerService is the daemon's container store.
func (c *Client) ContainerService() containers.Store {
	panic("client.ContainerService: not yet implemented")
}

// SnapshotService is the named snapshotter ("" means the client's default).
func (c *Client) SnapshotService(snapshotterName string) snapshots.Snapshotter {
	panic("client.SnapshotService: not yet implemented")
}

// LeasesService is the daemon's lease manager.
func (c *Client) LeasesService() leases.Manager { panic("client.LeasesService: not yet implemented") }

// NamespaceService is the daemon's namespace store.
func (c *Client) NamespaceService() namespaces.Store {
	panic("client.NamespaceService: not yet implemented")
}

// DiffService applies and computes layer diffs in the daemon.
type DiffService interface {
	diff.Applier
	diff.Comparer
}

// DiffService is the daemon's default differ.
func (c *Client) DiffService() DiffService { panic("client.DiffService: not yet implemented") }

// EventService publishes, forwards and subscribes to the daemon's events.
type EventService interface {
	events.Publisher
	events.Forwarder
	events.Subscriber
}

// EventService is the daemon's event service.
func (c *Client) EventService() EventService { panic("client.EventService: not yet implemented") }

// IntrospectionService is the raw introspection API (plugins, server).
func (c *Client) IntrospectionService() introspectionapi.IntrospectionClient {
	return introspectionapi.NewIntrospectionClient(c.conn)
}

// TaskService is the raw tasks API.
func (c *Client) TaskService() tasksapi.TasksClient { return tasksapi.NewTasksClient(c.conn) }

// VersionService is the raw version API.
func (c *Client) VersionService() versionapi.VersionClient {
	return versionapi.NewVersionClient(c.conn)
}

// WithLease returns a context under a lease made for it (unless ctx
// already carries one) and the function that releases it; what is written
// under the lease is safe from garbage collection until then. Options are
// the lease's; by default it expires after a day, so a crashed client's
// lease does not hold content forever.
func (c *Client) WithLease(ctx context.Context, opts ...leases.Opt) (context.Context, func(context.Context) error, error) {
	panic("client.WithLease: not yet implemented")
}
