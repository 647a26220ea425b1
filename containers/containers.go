// Package containers defines container records: the metadata a task is
// made from (its OCI spec, runtime, root filesystem snapshot), kept apart
// from any running process.
package containers

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/anypb"
)

// Container is what the daemon knows of a container between its tasks.
type Container struct {
	// ID names the container in its namespace; it must pass
	// identifiers.Validate.
	ID     string
	Labels map[string]string
	// Image is the name of the image the container was made from, for
	// reference only: nothing holds the image because of it.
	Image   string
	Runtime RuntimeInfo
	// Spec is the OCI runtime spec, usually as JSON under containerd's
	// type URL. It is required.
	Spec *anypb.Any
	// Snapshotter and SnapshotKey name the snapshot that is the
	// container's root filesystem; garbage collection keeps it while the
	// container exists.
	Snapshotter string
	SnapshotKey string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// Extensions carry clients' own data, by name.
	Extensions map[string]*anypb.Any
	// SandboxID is the sandbox the container belongs to, if any.
	SandboxID string
}

// RuntimeInfo names the runtime that runs the container's tasks and its
// runtime-specific options.
type RuntimeInfo struct {
	Name    string
	Options *anypb.Any
}

// Store keeps the containers of each namespace; the namespace comes from
// ctx.
type Store interface {
	Get(ctx context.Context, id string) (Container, error)
	// List returns the containers matching any of the filters (fields: id,
	// image, runtime.name, snapshotter, snapshotkey, sandbox,
	// labels.<key>).
	List(ctx context.Context, filters ...string) ([]Container, error)
	// Create adds container, setting its times; AlreadyExists if the id
	// is taken.
	Create(ctx context.Context, container Container) (Container, error)
	// Update changes the named fields ("labels", "labels.<key>", "image",
	// "spec", "snapshotkey", "extensions", "extensions.<name>"); with
	// none, all of those are replaced. The runtime and snapshotter cannot
	// change.
	Update(ctx context.Context, container Container, fieldpaths ...string) (Container, error)
	// Delete removes the container record; its snapshot goes with the
	// next garbage collection unless something else holds it.
	Delete(ctx context.Context, id string) error
}
