package client

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/opencontainers/image-spec/identity"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/oci"
	"github.com/llitfkitfk/containerd/snapshots"
)

// The type URLs containerd's clients store runtime-spec JSON under (as
// typeurl registers them), so records written by either client read in
// the other.
const (
	specTypeURL      = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
	processTypeURL   = "types.containerd.io/opencontainers/runtime-spec/1/Process"
	resourcesTypeURL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
)

// StopSignalLabel is the container label holding the signal that stops
// it (from the image's config), read by `ctr tasks kill` without
// --signal.
const StopSignalLabel = "io.containerd.image.config.stop-signal"

// anyOf packs v as containerd's typeurl would: a protobuf message under
// its bare full name, a runtime-spec type as JSON under its registered
// URL, an Any as itself.
func anyOf(v interface{}) (*anypb.Any, error) {
	var url string
	switch m := v.(type) {
	case *anypb.Any:
		return m, nil
	case proto.Message:
		b, err := proto.Marshal(m)
		if err != nil {
			return nil, err
		}
		return &anypb.Any{TypeUrl: string(proto.MessageName(m)), Value: b}, nil
	case *specs.Spec:
		url = specTypeURL
	case *specs.Process:
		url = processTypeURL
	case *specs.LinuxResources:
		url = resourcesTypeURL
	default:
		return nil, fmt.Errorf("cannot encode %T as an Any: %w", v, errdefs.ErrInvalidArgument)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &anypb.Any{TypeUrl: url, Value: b}, nil
}

// WithImage records the image the container is made from.
func WithImage(i Image) NewContainerOpts {
	return func(ctx context.Context, client *Client, c *containers.Container) error {
		c.Image = i.Name()
		return nil
	}
}

// WithImageName records an image name without checking it exists.
func WithImageName(name string) NewContainerOpts {
	return func(ctx context.Context, client *Client, c *containers.Container) error {
		c.Image = name
		return nil
	}
}

// WithSnapshotter names the snapshotter of the container's snapshot;
// give it before the snapshot options.
func WithSnapshotter(name string) NewContainerOpts {
	return func(ctx context.Context, client *Client, c *containers.Container) error {
		c.Snapshotter = name
		return nil
	}
}

// WithSnapshot uses the existing snapshot id as the root filesystem.
func WithSnapshot(id string) NewContainerOpts {
	return func(ctx context.Context, client *Client, c *containers.Container) error {
		c.Snapshotter = client.containerSnapshotter(c.Snapshotter)
		if _, err := client.SnapshotService(c.Snapshotter).Mounts(ctx, id); err != nil {
			return fmt.Errorf("snapshot %s: %w", id, err)
		}
		c.SnapshotKey = id
		return nil
	}
}

// WithNewSnapshot prepares an active snapshot id on the image's unpacked
// layers (their chain ID is the parent) as the root filesystem.
func WithNewSnapshot(id string, i Image, opts ...snapshots.Opt) NewContainerOpts {
	return newSnapshotOpt(id, i, false, opts)
}

// WithNewSnapshotView is WithNewSnapshot with a read-only view.
func WithNewSnapshotView(id string, i Image, opts ...snapshots.Opt) NewContainerOpts {
	return newSnapshotOpt(id, i, true, opts)
}

func newSnapshotOpt(id string, i Image, view bool, opts []snapshots.Opt) NewContainerOpts {
	return func(ctx context.Context, client *Client, c *containers.Container) error {
		diffIDs, err := i.RootFS(ctx)
		if err != nil {
			return fmt.Errorf("layers of image %s: %w", i.Name(), err)
		}
		parent := identity.ChainID(diffIDs).String()
		c.Snapshotter = client.containerSnapshotter(c.Snapshotter)
		s := client.SnapshotService(c.Snapshotter)
		if view {
			_, err = s.View(ctx, id, parent, opts...)
		} else {
			_, err = s.Prepare(ctx, id, parent, opts...)
		}
		if err != nil {
			if errdefs.IsNotFound(err) {
				return fmt.Errorf("image %s is not unpacked for snapshotter %s: %w", i.Name(), c.Snapshotter, err)
			}
			return err
		}
		c.SnapshotKey = id
		c.Image = i.Name()
		return nil
	}
}

// WithNewSpec makes the container's spec: the default spec changed by
// opts.
func WithNewSpec(opts ...oci.SpecOpts) NewContainerOpts {
	return func(ctx context.Context, client *Client, c *containers.Container) error {
		// The default spec is namespaced (its cgroup path): a client's
		// default namespace counts when the context names none.
		if ns := client.defaultNamespace; ns != "" {
			ctx = withDefaultNamespace(ctx, ns)
		}
		s, err := oci.GenerateSpec(ctx, client, c, opts...)
		if err != nil {
			return err
		}
		c.Spec, err = anyOf(s)
		return err
	}
}

// WithSpec makes the container's spec s changed by opts.
func WithSpec(s *oci.Spec, opts ...oci.SpecOpts) NewContainerOpts {
	return func(ctx context.Context, client *Client, c *containers.Container) error {
		if err := oci.ApplyOpts(ctx, client, c, s, opts...); err != nil {
			return err
		}
		var err error
		c.Spec, err = anyOf(s)
		return err
	}
}

// WithRuntime names the container's runtime and its options (for runc,
// a *options.Options of api/types/runc/options; nil for none).
func WithRuntime(name string, options interface{}) NewContainerOpts {
	return func(ctx context.Context, client *Client, c *containers.Container) error {
		c.Runtime = containers.RuntimeInfo{Name: name}
		if options != nil {
			a, err := anyOf(options)
			if err != nil {
				return fmt.Errorf("runtime options: %w", err)
			}
			c.Runtime.Options = a
		}
		return nil
	}
}

// WithContainerLabels replaces the container's labels.
func WithContainerLabels(labels map[string]string) NewContainerOpts {
	return func(ctx context.Context, client *Client, c *containers.Container) error {
		c.Labels = labels
		return nil
	}
}

// WithAdditionalContainerLabels adds labels to the container's.
func WithAdditionalContainerLabels(labels map[string]string) NewContainerOpts {
	return func(ctx context.Context, client *Client, c *containers.Container) error {
		if c.Labels == nil {
			c.Labels = make(map[string]string, len(labels))
		}
		for k, v := range labels {
			c.Labels[k] = v
		}
		return nil
	}
}

// WithImageStopSignal records the image's stop signal (or defaultSignal)
// in the container's StopSignalLabel.
func WithImageStopSignal(i Image, defaultSignal string) NewContainerOpts {
	return func(ctx context.Context, client *Client, c *containers.Container) error {
		cfg, err := i.Spec(ctx)
		if err != nil {
			return err
		}
		sig := cfg.Config.StopSignal
		if sig == "" {
			sig = defaultSignal
		}
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		c.Labels[StopSignalLabel] = sig
		return nil
	}
}

// GetStopSignal is the signal of the container's StopSignalLabel, or
// defaultSignal.
func GetStopSignal(ctx context.Context, container Container, defaultSignal syscall.Signal) (syscall.Signal, error) {
	labels, err := container.Labels(ctx)
	if err != nil {
		return -1, err
	}
	name, ok := labels[StopSignalLabel]
	if !ok {
		return defaultSignal, nil
	}
	return ParseSignal(name)
}

// ParseSignal reads a signal as a number or a name, with or without the
// SIG prefix, in any case ("9", "KILL", "sigterm").
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return -1, fmt.Errorf("invalid signal %q", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return -1, fmt.Errorf("invalid signal %q", s)
}

// WithContainerExtension attaches a client's own data to the container
// under name: a protobuf message or an Any.
func WithContainerExtension(name string, extension interface{}) NewContainerOpts {
	return func(ctx context.Context, client *Client, c *containers.Container) error {
		if name == "" {
			return fmt.Errorf("extension name must not be empty: %w", errdefs.ErrInvalidArgument)
		}
		a, err := anyOf(extension)
		if err != nil {
			return fmt.Errorf("extension %s: %w", name, err)
		}
		if c.Extensions == nil {
			c.Extensions = map[string]*anypb.Any{}
		}
		c.Extensions[name] = a
		return nil
	}
}
