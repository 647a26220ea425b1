package client

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/fifo"

	"github.com/llitfkitfk/containerd/api/convert"
	tasksapi "github.com/llitfkitfk/containerd/api/services/tasks/v1"
	tasktypes "github.com/llitfkitfk/containerd/api/types/task"
	"github.com/llitfkitfk/containerd/cio"
	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/errdefs"
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
	// The snapshot an option prepares is referenced by nothing until the
	// record exists: the lease keeps collection off it meanwhile.
	ctx, done, err := c.WithLease(ctx)
	if err != nil {
		return nil, err
	}
	defer done(ctx)
	rec := containers.Container{
		ID:      id,
		Runtime: containers.RuntimeInfo{Name: c.containerRuntime()},
	}
	for _, o := range opts {
		if err := o(ctx, c, &rec); err != nil {
			return nil, err
		}
	}
	// A snapshot made by the options is left in place when the record
	// cannot be created: it may be another container's (the id is
	// taken), and an unreferenced one goes with the next collection.
	if _, err := c.ContainerService().Create(ctx, rec); err != nil {
		return nil, err
	}
	return &container{client: c, id: id}, nil
}

// LoadContainer returns the existing container id.
func (c *Client) LoadContainer(ctx context.Context, id string) (Container, error) {
	if _, err := c.ContainerService().Get(ctx, id); err != nil {
		return nil, err
	}
	return &container{client: c, id: id}, nil
}

// Containers returns the containers matching any of filters.
func (c *Client) Containers(ctx context.Context, filters ...string) ([]Container, error) {
	recs, err := c.ContainerService().List(ctx, filters...)
	if err != nil {
		return nil, err
	}
	out := make([]Container, len(recs))
	for i, r := range recs {
		out[i] = &container{client: c, id: r.ID}
	}
	return out, nil
}

// containerRuntime is the runtime of containers that name none.
func (c *Client) containerRuntime() string {
	if c.runtime != "" {
		return c.runtime
	}
	return DefaultRuntime
}

// containerSnapshotter is the snapshotter name, or the client's default
// for "".
func (c *Client) containerSnapshotter(name string) string {
	switch {
	case name != "":
		return name
	case c.snapshotter != "":
		return c.snapshotter
	}
	return DefaultSnapshotter
}

// container is a handle on a container record: every call reads the
// record afresh, so a handle never acts on stale fields.
type container struct {
	client *Client
	id     string
}

func (c *container) ID() string { return c.id }

func (c *container) Info(ctx context.Context) (containers.Container, error) {
	return c.client.ContainerService().Get(ctx, c.id)
}

func (c *container) Delete(ctx context.Context, opts ...DeleteOpts) error {
	if _, err := c.client.TaskService().Get(ctx, &tasksapi.GetRequest{ContainerId: c.id}); err == nil {
		return fmt.Errorf("cannot delete container %s: it has a task: %w", c.id, errdefs.ErrFailedPrecondition)
	} else if err = errdefs.FromGRPC(err); !errdefs.IsNotFound(err) {
		return err
	}
	rec, err := c.Info(ctx)
	if err != nil {
		return err
	}
	for _, o := range opts {
		if err := o(ctx, c.client, rec); err != nil {
			return err
		}
	}
	return c.client.ContainerService().Delete(ctx, c.id)
}

// WithSnapshotCleanup removes the container's snapshot with it.
func WithSnapshotCleanup(ctx context.Context, client *Client, c containers.Container) error {
	if c.SnapshotKey == "" {
		return nil
	}
	if c.Snapshotter == "" {
		return fmt.Errorf("container %s has snapshot %s but no snapshotter: %w", c.ID, c.SnapshotKey, errdefs.ErrInvalidArgument)
	}
	err := client.SnapshotService(c.Snapshotter).Remove(ctx, c.SnapshotKey)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove snapshot %s of container %s: %w", c.SnapshotKey, c.ID, err)
	}
	return nil
}

func (c *container) Spec(ctx context.Context) (*oci.Spec, error) {
	rec, err := c.Info(ctx)
	if err != nil {
		return nil, err
	}
	return specOfContainer(rec)
}

// specOfContainer decodes a record's spec, which containerd's clients
// store as JSON under the spec's type URL.
func specOfContainer(rec containers.Container) (*oci.Spec, error) {
	if rec.Spec == nil || len(rec.Spec.GetValue()) == 0 {
		return nil, fmt.Errorf("container %s has no spec: %w", rec.ID, errdefs.ErrNotFound)
	}
	var s oci.Spec
	if err := json.Unmarshal(rec.Spec.GetValue(), &s); err != nil {
		return nil, fmt.Errorf("spec of container %s (%s): %w", rec.ID, rec.Spec.GetTypeUrl(), err)
	}
	return &s, nil
}

func (c *container) Image(ctx context.Context) (Image, error) {
	rec, err := c.Info(ctx)
	if err != nil {
		return nil, err
	}
	if rec.Image == "" {
		return nil, fmt.Errorf("container %s has no image: %w", c.id, errdefs.ErrNotFound)
	}
	return c.client.GetImage(ctx, rec.Image)
}

func (c *container) Labels(ctx context.Context) (map[string]string, error) {
	rec, err := c.Info(ctx)
	if err != nil {
		return nil, err
	}
	return rec.Labels, nil
}

// SetLabels sets (or, with an empty value, clears) the given labels and
// leaves the others; it returns the labels the container then has.
func (c *container) SetLabels(ctx context.Context, labels map[string]string) (map[string]string, error) {
	rec := containers.Container{ID: c.id, Labels: labels}
	paths := make([]string, 0, len(labels))
	for k := range labels {
		paths = append(paths, "labels."+k)
	}
	if len(paths) == 0 {
		return c.Labels(ctx)
	}
	updated, err := c.client.ContainerService().Update(ctx, rec, paths...)
	if err != nil {
		return nil, err
	}
	return updated.Labels, nil
}

func (c *container) Update(ctx context.Context, opts ...UpdateContainerOpts) error {
	rec, err := c.Info(ctx)
	if err != nil {
		return err
	}
	for _, o := range opts {
		if err := o(ctx, c.client, &rec); err != nil {
			return err
		}
	}
	_, err = c.client.ContainerService().Update(ctx, rec)
	return err
}

func (c *container) NewTask(ctx context.Context, ioCreate cio.Creator, opts ...NewTaskOpts) (_ Task, retErr error) {
	rec, err := c.Info(ctx)
	if err != nil {
		return nil, err
	}
	info := TaskInfo{Runtime: rec.Runtime.Name, runtimeOptions: rec.Runtime.Options}
	for _, o := range opts {
		if err := o(ctx, c.client, &info); err != nil {
			return nil, err
		}
	}
	req := &tasksapi.CreateTaskRequest{ContainerId: c.id}
	if info.RootFS != nil {
		req.Rootfs = convert.MountsToProto(info.RootFS)
	} else if rec.SnapshotKey != "" {
		if rec.Snapshotter == "" {
			return nil, fmt.Errorf("container %s has snapshot %s but no snapshotter: %w", c.id, rec.SnapshotKey, errdefs.ErrInvalidArgument)
		}
		mounts, err := c.client.SnapshotService(rec.Snapshotter).Mounts(ctx, rec.SnapshotKey)
		if err != nil {
			return nil, fmt.Errorf("mounts of snapshot %s: %w", rec.SnapshotKey, err)
		}
		req.Rootfs = convert.MountsToProto(mounts)
	}
	// The runtime's options travel with the task only when given here;
	// otherwise the daemon takes the container's (WithRuntime).
	if info.Options != nil {
		a, err := anyOf(info.Options)
		if err != nil {
			return nil, fmt.Errorf("task options: %w", err)
		}
		req.Options = a
	}
	// The IO is made last, so no option's failure leaves fifos behind.
	i, err := ioCreate(c.id)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			i.Cancel()
			i.Close()
		}
	}()
	cfg := i.Config()
	req.Terminal, req.Stdin, req.Stdout, req.Stderr = cfg.Terminal, cfg.Stdin, cfg.Stdout, cfg.Stderr
	resp, err := c.client.TaskService().Create(ctx, req)
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	return &task{client: c.client, id: c.id, pid: resp.GetPid(), io: i}, nil
}

func (c *container) Task(ctx context.Context, ioAttach cio.Attach) (Task, error) {
	resp, err := c.client.TaskService().Get(ctx, &tasksapi.GetRequest{ContainerId: c.id})
	if err != nil {
		err = errdefs.FromGRPC(err)
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("no running task found: %w", err)
		}
		return nil, err
	}
	p := resp.GetProcess()
	t := &task{client: c.client, id: c.id, pid: p.GetPid()}
	if ioAttach != nil && p.GetStatus() != tasktypes.Status_UNKNOWN {
		if t.io, err = attachIO(p, ioAttach); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// attachIO reattaches to the fifos the daemon reports for p. Closing the
// IO removes them, and their directory once empty, as the IO that made
// them would have; what is not a fifo (a log file) is left alone.
func attachIO(p *tasktypes.Process, ioAttach cio.Attach) (cio.IO, error) {
	cfg := cio.Config{Terminal: p.GetTerminal(), Stdin: p.GetStdin(), Stdout: p.GetStdout(), Stderr: p.GetStderr()}
	paths := []string{cfg.Stdin, cfg.Stdout, cfg.Stderr}
	closer := func() error {
		var err error
		dirs := map[string]bool{}
		for _, path := range paths {
			if isFifo, _ := fifo.IsFifo(path); !isFifo {
				continue
			}
			if rerr := os.Remove(path); rerr != nil && err == nil {
				err = rerr
			}
			dirs[filepath.Dir(path)] = true
		}
		for dir := range dirs {
			os.Remove(dir) // fails, as it should, unless empty
		}
		return err
	}
	return ioAttach(cio.NewFIFOSet(cfg, closer))
}
