package client

import (
	"context"

	"google.golang.org/grpc"

	containersapi "github.com/llitfkitfk/containerd/api/services/containers/v1"
	contentapi "github.com/llitfkitfk/containerd/api/services/content/v1"
	diffapi "github.com/llitfkitfk/containerd/api/services/diff/v1"
	eventsapi "github.com/llitfkitfk/containerd/api/services/events/v1"
	imagesapi "github.com/llitfkitfk/containerd/api/services/images/v1"
	introspectionapi "github.com/llitfkitfk/containerd/api/services/introspection/v1"
	leasesapi "github.com/llitfkitfk/containerd/api/services/leases/v1"
	namespacesapi "github.com/llitfkitfk/containerd/api/services/namespaces/v1"
	snapshotsapi "github.com/llitfkitfk/containerd/api/services/snapshots/v1"
	tasksapi "github.com/llitfkitfk/containerd/api/services/tasks/v1"
	versionapi "github.com/llitfkitfk/containerd/api/services/version/v1"
	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/content"
	contentproxy "github.com/llitfkitfk/containerd/content/proxy"
	diffproxy "github.com/llitfkitfk/containerd/diff/proxy"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/leases"
	leasesproxy "github.com/llitfkitfk/containerd/leases/proxy"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/snapshots"
	snapshotsproxy "github.com/llitfkitfk/containerd/snapshots/proxy"
)

// The services are thin: each accessor wraps the connection in the
// generated client and an adapter to the domain interface, so making one
// per call costs two small allocations and no round trip.

// ContentStore is the daemon's content store.
func (c *Client) ContentStore() content.Store {
	return contentproxy.NewContentStore(contentapi.NewContentClient(c.cc))
}

// ImageService is the daemon's image store.
func (c *Client) ImageService() images.Store {
	return NewImageStoreFromClient(imagesapi.NewImagesClient(c.cc))
}

// ContainerService is the daemon's container store.
func (c *Client) ContainerService() containers.Store {
	return NewRemoteContainerStore(containersapi.NewContainersClient(c.cc))
}

// SnapshotService is the named snapshotter ("" means the client's default).
func (c *Client) SnapshotService(snapshotterName string) snapshots.Snapshotter {
	if snapshotterName == "" {
		snapshotterName = c.snapshotter
	}
	return snapshotsproxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(c.cc), snapshotterName)
}

// LeasesService is the daemon's lease manager.
func (c *Client) LeasesService() leases.Manager {
	return leasesproxy.NewLeaseManager(leasesapi.NewLeasesClient(c.cc))
}

// NamespaceService is the daemon's namespace store.
func (c *Client) NamespaceService() namespaces.Store {
	return NewNamespaceStoreFromClient(namespacesapi.NewNamespacesClient(c.cc))
}

// DiffService is the daemon's default differ.
func (c *Client) DiffService() DiffService {
	return diffproxy.NewDiffApplier(diffapi.NewDiffClient(c.cc))
}

// EventService is the daemon's event service.
func (c *Client) EventService() EventService {
	return NewEventServiceFromClient(eventsapi.NewEventsClient(c.cc))
}

// IntrospectionService is the raw introspection API (plugins, server).
func (c *Client) IntrospectionService() introspectionapi.IntrospectionClient {
	return introspectionapi.NewIntrospectionClient(c.cc)
}

// TaskService is the raw tasks API.
func (c *Client) TaskService() tasksapi.TasksClient { return tasksapi.NewTasksClient(c.cc) }

// VersionService is the raw version API.
func (c *Client) VersionService() versionapi.VersionClient {
	return versionapi.NewVersionClient(c.cc)
}

// namespacedConn names the namespace on every call (see
// withDefaultNamespace). New also installs interceptors that do the same,
// so that code using Conn directly gets it too; this covers NewWithConn,
// whose connection was made without them.
type namespacedConn struct {
	conn      grpc.ClientConnInterface
	namespace string
}

func (n namespacedConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return n.conn.Invoke(withDefaultNamespace(ctx, n.namespace), method, args, reply, opts...)
}

func (n namespacedConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return n.conn.NewStream(withDefaultNamespace(ctx, n.namespace), desc, method, opts...)
}
