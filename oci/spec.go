// Package oci builds OCI runtime specs for containers: a default Linux
// spec like containerd's, changed by options (the image's config, the
// user's args, env and mounts, namespaces shared with the host...).
package oci

import (
	"context"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/snapshots"
)

// Spec is an OCI runtime spec.
type Spec = specs.Spec

// Client is what spec options need of a client: the snapshotter that
// holds the container's root filesystem, to read /etc/passwd and
// /etc/group from it.
type Client interface {
	SnapshotService(snapshotterName string) snapshots.Snapshotter
}

// Image is what spec options need of an image: its config.
type Image interface {
	Config(ctx context.Context) (ocispec.Descriptor, error)
	ContentStore() content.Store
}

// SpecOpts changes a spec being built for container c.
type SpecOpts func(ctx context.Context, client Client, c *containers.Container, s *Spec) error

// GenerateSpec makes the default spec for c (namespaced by the context's
// namespace, as containerd's is) and applies opts in order.
func GenerateSpec(ctx context.Context, client Client, c *containers.Container, opts ...SpecOpts) (*Spec, error) {
	panic("oci.GenerateSpec: not yet implemented")
}

// ApplyOpts applies opts to s in order.
func ApplyOpts(ctx context.Context, client Client, c *containers.Container, s *Spec, opts ...SpecOpts) error {
	for _, o := range opts {
		if err := o(ctx, client, c, s); err != nil {
			return err
		}
	}
	return nil
}

// WithImageConfig sets the process's args, env (merged over the spec's),
// working dir and user from the image's config.
func WithImageConfig(image Image) SpecOpts { panic("oci.WithImageConfig: not yet implemented") }

// WithImageConfigArgs is WithImageConfig with args replacing the image's
// command (the entrypoint stays, as docker run does).
func WithImageConfigArgs(image Image, args []string) SpecOpts {
	panic("oci.WithImageConfigArgs: not yet implemented")
}

// WithProcessArgs replaces the process's args.
func WithProcessArgs(args ...string) SpecOpts { panic("oci.WithProcessArgs: not yet implemented") }

// WithProcessCwd sets the process's working directory.
func WithProcessCwd(cwd string) SpecOpts { panic("oci.WithProcessCwd: not yet implemented") }

// WithEnv merges env ("KEY=value"; "KEY" alone removes KEY) into the
// process's environment.
func WithEnv(env []string) SpecOpts { panic("oci.WithEnv: not yet implemented") }

// WithMounts appends mounts, replacing any at the same destination.
func WithMounts(mounts []specs.Mount) SpecOpts { panic("oci.WithMounts: not yet implemented") }

// WithHostNamespace removes namespace ns, so the container shares the
// host's.
func WithHostNamespace(ns specs.LinuxNamespaceType) SpecOpts {
	panic("oci.WithHostNamespace: not yet implemented")
}

// WithHostHostsFile bind-mounts the host's /etc/hosts.
func WithHostHostsFile(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
	panic("oci.WithHostHostsFile: not yet implemented")
}

// WithHostResolvconf bind-mounts the host's /etc/resolv.conf.
func WithHostResolvconf(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
	panic("oci.WithHostResolvconf: not yet implemented")
}

// WithTTY gives the process a terminal.
func WithTTY(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
	panic("oci.WithTTY: not yet implemented")
}

// WithUser sets the process's user from "user", "user:group", "uid" or
// "uid:gid", names looked up in the container's root filesystem's
// /etc/passwd and /etc/group.
func WithUser(userstr string) SpecOpts { panic("oci.WithUser: not yet implemented") }

// WithPrivileged gives the container every capability and device, and
// unmasks /proc and /sys.
func WithPrivileged(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
	panic("oci.WithPrivileged: not yet implemented")
}
