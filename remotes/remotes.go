// Package remotes defines how the daemon reaches images held elsewhere: a
// Resolver turns a reference into the descriptor it names and hands out a
// Fetcher to read content and a Pusher to write it. remotes/docker is the
// implementation for registries speaking the OCI distribution API.
package remotes

import (
	"context"
	"io"

	"github.com/llitfkitfk/containerd/content"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Resolver finds what a reference names and gives access to its content.
type Resolver interface {
	// Resolve returns the canonical name of ref and the descriptor of the
	// manifest or index it names. A reference that names nothing is
	// errdefs.ErrNotFound.
	Resolve(ctx context.Context, ref string) (name string, desc ocispec.Descriptor, err error)
	// Fetcher returns a Fetcher for the content of ref's repository.
	Fetcher(ctx context.Context, ref string) (Fetcher, error)
	// Pusher returns a Pusher to ref's repository; a manifest pushed
	// through it is tagged with ref's tag.
	Pusher(ctx context.Context, ref string) (Pusher, error)
}

// Fetcher reads content from a remote.
type Fetcher interface {
	// Fetch opens the content desc names. The reader yields at most
	// desc.Size bytes; callers verify the digest as they read.
	Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error)
}

// FetcherByDigest is a Fetcher that can open a blob knowing only its
// digest, returning the descriptor it learned (size, media type).
type FetcherByDigest interface {
	FetchByDigest(ctx context.Context, dgst ocispec.Descriptor) (io.ReadCloser, ocispec.Descriptor, error)
}

// Pusher writes content to a remote.
type Pusher interface {
	// Push returns a writer for desc; committing it completes the upload.
	// Content the remote already has is errdefs.ErrAlreadyExists, with no
	// writer.
	Push(ctx context.Context, desc ocispec.Descriptor) (content.Writer, error)
}

// MountPusher is a Pusher that can ask the remote to link a blob from
// another repository of the same registry instead of uploading it.
type MountPusher interface {
	Pusher
	// Mount links desc from repository from (a path on the same
	// registry, without the host). ErrNotFound: upload it instead.
	Mount(ctx context.Context, desc ocispec.Descriptor, from string) error
}
