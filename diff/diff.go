// Package diff defines how layers are applied onto mounts and made from
// them: an Applier unpacks a layer blob onto a snapshot's mounts, a
// Comparer writes the difference between two mount sets as a layer blob.
//
// The implementations are in diff/apply and diff/walking; the walking
// differ plugin offers both.
package diff

import (
	"context"
	"io"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/mount"
)

// LabelUncompressed is the content label holding the digest of a
// compressed layer's uncompressed tar: its diff ID.
const LabelUncompressed = "containerd.io/uncompressed"

// Comparer makes layers from mounts.
type Comparer interface {
	// Compare writes the difference from lower to upper into the content
	// store as a layer and returns its descriptor. lower may be empty, for
	// a first layer.
	Compare(ctx context.Context, lower, upper []mount.Mount, opts ...Opt) (ocispec.Descriptor, error)
}

// Config holds the settings of a Compare.
type Config struct {
	// MediaType is the layer's media type, which also selects its
	// compression; the differ picks one if empty (gzip for walking).
	MediaType string
	// Reference names the content ingest, so that callers can follow it;
	// a unique one is made if empty.
	Reference string
	// Labels go on the committed blob.
	Labels map[string]string
	// Compressor, if set, compresses the tar instead of the built-in
	// compressors; MediaType must then be set.
	Compressor func(dest io.Writer, mediaType string) (io.WriteCloser, error)
	// SourceDateEpoch, if set, caps the layer's timestamps, for
	// reproducible layers.
	SourceDateEpoch *time.Time
}

// Opt sets a Config field.
type Opt func(*Config) error

// WithMediaType sets the media type of the layer to make.
func WithMediaType(m string) Opt {
	return func(c *Config) error {
		c.MediaType = m
		return nil
	}
}

// WithReference sets the content ingest reference.
func WithReference(ref string) Opt {
	return func(c *Config) error {
		c.Reference = ref
		return nil
	}
}

// WithLabels sets the labels of the committed blob.
func WithLabels(labels map[string]string) Opt {
	return func(c *Config) error {
		c.Labels = labels
		return nil
	}
}

// WithCompressor compresses the layer with f instead of the built-in
// compressors.
func WithCompressor(f func(dest io.Writer, mediaType string) (io.WriteCloser, error)) Opt {
	return func(c *Config) error {
		c.Compressor = f
		return nil
	}
}

// WithSourceDateEpoch caps the layer's timestamps at tm.
func WithSourceDateEpoch(tm *time.Time) Opt {
	return func(c *Config) error {
		c.SourceDateEpoch = tm
		return nil
	}
}

// Applier unpacks layers onto mounts.
type Applier interface {
	// Apply unpacks the layer desc names onto mounts and returns the
	// descriptor of what was applied: the uncompressed tar, whose digest
	// is the layer's diff ID. Callers check it against the image config.
	Apply(ctx context.Context, desc ocispec.Descriptor, mounts []mount.Mount, opts ...ApplyOpt) (ocispec.Descriptor, error)
}

// StreamApplier is an Applier that can also apply a layer from its bytes
// as they arrive, rather than from the content store once they are all
// there: a pull then unpacks a layer while it downloads.
type StreamApplier interface {
	Applier
	// ApplyStream is Apply with the layer's compressed bytes read from
	// r, to its end; desc says how they are compressed. It does not
	// check desc's digest, which is the caller's to verify (as the
	// fetch that feeds r does) before trusting what was applied. It
	// fails with NotImplemented, having read nothing from r, for a
	// layer it cannot apply.
	ApplyStream(ctx context.Context, desc ocispec.Descriptor, r io.Reader, mounts []mount.Mount, opts ...ApplyOpt) (ocispec.Descriptor, error)
}

// ApplyConfig holds the settings of an Apply.
type ApplyConfig struct {
	// ProcessorPayloads are data for stream processors, keyed by media
	// type (decryption keys, for instance).
	ProcessorPayloads map[string]*anypb.Any
	// SyncFs syncs the filesystem written to before Apply returns.
	SyncFs bool
	// Progress, if set, is called with the number of compressed bytes
	// read so far.
	Progress func(int64)
	// DiffID, if set, is the digest the uncompressed tar must have: Apply
	// fails with FailedPrecondition if it does not, so that a client that
	// does not check can still not unpack a layer its image does not name.
	DiffID digest.Digest
}

// ApplyOpt sets an ApplyConfig field; it sees the descriptor applied.
type ApplyOpt func(ctx context.Context, desc ocispec.Descriptor, c *ApplyConfig) error

// WithPayloads sets the stream processors' payloads.
func WithPayloads(payloads map[string]*anypb.Any) ApplyOpt {
	return func(_ context.Context, _ ocispec.Descriptor, c *ApplyConfig) error {
		c.ProcessorPayloads = payloads
		return nil
	}
}

// WithSyncFs makes Apply sync the filesystem before returning.
func WithSyncFs(sync bool) ApplyOpt {
	return func(_ context.Context, _ ocispec.Descriptor, c *ApplyConfig) error {
		c.SyncFs = sync
		return nil
	}
}

// WithProgress reports the compressed bytes read, at least at 0 and at
// the end.
func WithProgress(f func(desc ocispec.Descriptor, read int64)) ApplyOpt {
	return func(_ context.Context, desc ocispec.Descriptor, c *ApplyConfig) error {
		c.Progress = func(n int64) { f(desc, n) }
		return nil
	}
}

// WithDiffID makes Apply verify the uncompressed tar's digest.
func WithDiffID(d digest.Digest) ApplyOpt {
	return func(_ context.Context, _ ocispec.Descriptor, c *ApplyConfig) error {
		c.DiffID = d
		return nil
	}
}
