package client

import (
	"context"

	"github.com/llitfkitfk/containerd/cio"
	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/oci"
)

// Container is a container record of the daemon, with the client that
// runs its task.
type Container interface {
	ID() string
	Info(ctx context.Context) (containers.Container, error)
	// Delete removes the record; with WithSnapshotCleanup, its snapshot
	// too. A container with a task is refused.
	Delete(ctx context.Context, opts ...DeleteOpts) error
	// NewTask creates the container's task (its init process, not yet
	// started) with stdio from ioCreate.
	NewTask(ctx context.Context, ioCreate cio.Creator, opts ...NewTaskOpts) (Task, error)
	Spec(ctx context.Context) (*oci.Spec, error)
	// Task loads the running task; ioAttach (nil for none) reattaches to
	// its stdio.
	Task(ctx context.Context, ioAttach cio.Attach) (Task, error)
	Image(ctx context.Context) (Image, error)
	Labels(ctx context.Context) (map[string]string, error)
	SetLabels(ctx context.Context, labels map[string]string) (map[string]string, error)
	Update(ctx context.Context, opts ...UpdateContainerOpts) error
}

// NewContainerOpts sets a field of a container being created.
type NewContainerOpts func(ctx context.Context, client *Client, c *containers.Container) error

// UpdateContainerOpts changes a field of a container being updated.
type UpdateContainerOpts func(ctx context.Context, client *Client, c *containers.Container) error

// DeleteOpts is an option of Container.Delete.
type DeleteOpts func(ctx context.Context, client *Client, c containers.Container) error

// NewContainer creates container id from opts (WithImage,
// WithNewSnapshot, WithNewSpec, WithRuntime...).
func (c *Client) NewContainer(ctx context.Context, id string, opts ...NewContainerOpts) (Container, error) {
	panic("client.NewContainer: not yet implemented")
}

// LoadContainer returns the existing container id.
func (c *Client) LoadContainer(ctx context.Context, id string) (Container, error) {
	panic("client.LoadContainer: not yet implemented")
}

// Containers returns the containers matching any of filters.
func (c *Client) Containers(ctx context.Context, filters ...string) ([]Container, error) {
	panic("client.Containers: not yet implemented")
}
