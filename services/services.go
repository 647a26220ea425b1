// Package services names the daemon's local services: the plugins of type
// io.containerd.service.v1 that hold each API's logic and publish its
// events, in process. The gRPC services are thin adapters over them, and
// whatever else in the daemon needs an API's behaviour (the CRI plugin, the
// transfer service, an in-process client) calls them directly.
//
// The ids are containerd's, which clients see through introspection.
package services

const (
	// ContentService is a content.Store that announces /content/delete.
	ContentService = "content-service"
	// ImagesService is an images.Store that announces /images/*.
	ImagesService = "images-service"
	// ContainersService is a containers.Store that announces /containers/*.
	ContainersService = "containers-service"
	// LeasesService is a leases.Manager.
	LeasesService = "leases-service"
	// NamespacesService is a namespaces.Manager that announces
	// /namespaces/*.
	NamespacesService = "namespaces-service"
	// SnapshotsService is a map of snapshots.Snapshotter by name, each
	// announcing /snapshot/*.
	SnapshotsService = "snapshots-service"
	// DiffService applies and compares layers with the configured differs.
	DiffService = "diff-service"
	// TasksService makes tasks from container records and drives them.
	TasksService = "tasks-service"
	// IntrospectionService reports the daemon's plugins and identity.
	IntrospectionService = "introspection-service"
)
