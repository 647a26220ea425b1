// Package unpack turns images' layers into snapshots while they are being
// fetched: an Unpacker wraps the handler that fetches an image and applies
// each layer once its bytes are verified.
package unpack

import (
	"context"

	"github.com/containerd/platforms"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/snapshots"
	"golang.org/x/sync/semaphore"
)

// Platform is where to unpack the manifests of one platform.
type Platform struct {
	Platform       platforms.Matcher
	SnapshotterKey string // the snapshotter's name, for labels
	Snapshotter    snapshots.Snapshotter
	Applier        diff.Applier
	// SnapshotOpts are given to every Prepare and Commit.
	SnapshotOpts []snapshots.Opt
	ApplyOpts    []diff.ApplyOpt
}

// UnpackerOpt configures an Unpacker.
type UnpackerOpt func(*unpackerConfig) error

type unpackerConfig struct {
	platforms []*Platform
	limiter   *semaphore.Weighted
	progress  func(Progress)
}

// WithUnpackPlatform adds a platform to unpack.
func WithUnpackPlatform(u Platform) UnpackerOpt {
	return func(c *unpackerConfig) error { c.platforms = append(c.platforms, &u); return nil }
}

// WithLimiter bounds how many layers are fetched at once.
func WithLimiter(l *semaphore.Weighted) UnpackerOpt {
	return func(c *unpackerConfig) error { c.limiter = l; return nil }
}

// Progress reports a layer's unpacking.
type Progress struct {
	Layer string // the layer's digest
	Event string // "unpacking", "unpacked", "already exists"
	Bytes int64  // compressed bytes applied so far
	Total int64
}

// WithProgress sends unpack progress to f.
func WithProgress(f func(Progress)) UnpackerOpt {
	return func(c *unpackerConfig) error { c.progress = f; return nil }
}

// Result is what Wait reports once unpacking is done.
type Result struct {
	// Unpacks is the number of manifests unpacked.
	Unpacks int
}

// Unpacker unpacks the images a fetch walks.
type Unpacker struct {
	content content.Store
	config  unpackerConfig
}

// NewUnpacker returns an Unpacker reading layers from cs.
func NewUnpacker(ctx context.Context, cs content.Store, opts ...UnpackerOpt) (*Unpacker, error) {
	panic("unpack.NewUnpacker: not yet implemented")
}

// Unpack wraps h, the handler that fetches an image's content: manifests
// of the platforms to unpack are followed, their layers fetched through h
// (at most the limiter's weight at once) and each applied as soon as it
// is fetched; the chain is committed in order and the config labelled with
// containerd.io/gc.ref.snapshot.<snapshotter> so the snapshots live as
// long as the image.
func (u *Unpacker) Unpack(h images.Handler) images.Handler {
	panic("unpack.Unpacker.Unpack: not yet implemented")
}

// Wait waits for every unpack Unpack started and returns the first error.
func (u *Unpacker) Wait() (Result, error) {
	panic("unpack.Unpacker.Wait: not yet implemented")
}
