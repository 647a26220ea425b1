// Package unpack turns images' layers into snapshots while they are being
// fetched: an Unpacker wraps the handler that fetches an image and applies
// each layer once its bytes are verified.
//
// Layers are fetched concurrently, at most the limiter's weight at once,
// and each is applied as soon as its own fetch is done, whatever the order
// they arrive in. Snapshotters that can rebase (CapRebase: a snapshot
// prepared without a parent can be committed onto one, because a layer's
// files do not depend on its parent's, as in overlay) have their layers
// applied in parallel; others, in order, each on its committed parent.
// Either way the chain is committed bottom up, so a snapshot named by a
// chain ID is always complete.
package unpack

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/remotes"
	"github.com/llitfkitfk/containerd/snapshots"
)

// CapRebase is the snapshotter capability that allows parallel unpacking:
// a snapshot prepared without a parent may be committed onto one (its
// Commit honours an Info.Parent set by an option), and its parentless
// active snapshot is mounted as a bind of the directory that becomes its
// overlay upper layer. containerd's overlayfs plugin advertises it by this
// name.
const CapRebase = "rebase"

// Labels the unpacker sets, as containerd's does.
const (
	// labelSnapshotDiffID, on a layer's snapshot, is the layer's diff ID.
	labelSnapshotDiffID = "containerd.io/snapshot/diff-id"
	// labelSnapshotParent, on a layer's snapshot, is its parent's chain ID.
	labelSnapshotParent = "containerd.io/snapshot/parent-chain-id"
	// labelGCRefSnapshot, followed by the snapshotter's name, on the image
	// config names the chain's top snapshot, which the collector then
	// keeps (with its parents) as long as the config.
	labelGCRefSnapshot = "containerd.io/gc.ref.snapshot."
	// Image annotations must not choose how a snapshotter maps owners.
	labelSnapshotUIDMapping = "containerd.io/snapshot/uidmapping"
	labelSnapshotGIDMapping = "containerd.io/snapshot/gidmapping"
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
	// SnapshotterCapabilities are those the snapshotter's plugin
	// advertises; with CapRebase, layers are applied in parallel.
	SnapshotterCapabilities []string
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

// Progress events.
const (
	EventUnpacking     = "unpacking"
	EventUnpacked      = "unpacked"
	EventAlreadyExists = "already exists"
)

// WithProgress sends unpack progress to f. Calls to f are serialised, so
// it needs no locking of its own, and must not block for long.
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

	// ctx is the caller's, for the values it carries (namespace, lease),
	// cancelled on the first failure; unpacks outlive the handler calls
	// that start them, and Dispatch cancels its context when it returns.
	ctx context.Context
	eg  *errgroup.Group
	// applies bounds the layers applied at once in parallel mode, which
	// for content that is already local (an import) would otherwise be
	// every layer of the image.
	applies *semaphore.Weighted
	unpacks atomic.Int32
	// streaming is whether some platform applies layers from their
	// downloads (in parallel, with a diff.StreamApplier).
	streaming bool

	progressMu sync.Mutex

	mu sync.Mutex
	// waiting holds, by config digest, the layers of the manifests that
	// name it, whose fetches are under way: a manifest's layers are
	// fetched at once, and wait for its config, which holds their diff
	// IDs and platform, to be applied.
	waiting map[digest.Digest][]*pending
	// unpacked holds the configs whose chain an unpack has been started
	// for; other manifests with the same config (compression variants
	// have the same diff IDs) only have their layers fetched.
	unpacked map[digest.Digest]bool
}

// NewUnpacker returns an Unpacker reading layers from cs. ctx carries what
// every fetch and snapshot call needs (namespace, lease); cancelling it
// stops the unpacks.
func NewUnpacker(ctx context.Context, cs content.Store, opts ...UnpackerOpt) (*Unpacker, error) {
	u := &Unpacker{
		content:  cs,
		applies:  semaphore.NewWeighted(int64(max(2, runtime.GOMAXPROCS(0)))),
		waiting:  map[digest.Digest][]*pending{},
		unpacked: map[digest.Digest]bool{},
	}
	for _, o := range opts {
		if err := o(&u.config); err != nil {
			return nil, err
		}
	}
	if len(u.config.platforms) == 0 {
		return nil, fmt.Errorf("unpacker: no platform to unpack for: %w", errdefs.ErrInvalidArgument)
	}
	for _, p := range u.config.platforms {
		if p.Platform == nil || p.Snapshotter == nil || p.Applier == nil || p.SnapshotterKey == "" {
			return nil, fmt.Errorf("unpacker: a platform needs a matcher, a snapshotter, its name and an applier: %w", errdefs.ErrInvalidArgument)
		}
	}
	u.eg, u.ctx = errgroup.WithContext(ctx)
	for _, p := range u.config.platforms {
		if _, ok := p.Applier.(diff.StreamApplier); ok && slices.Contains(p.SnapshotterCapabilities, CapRebase) {
			u.streaming = true
		}
	}
	return u, nil
}

// pending is a manifest's layers, being fetched, waiting for its config.
type pending struct {
	layers  []ocispec.Descriptor
	fetches *fetches
	// streams are the layers' pipes from their fetches to their applies,
	// nil if no platform can apply in parallel from a stream; until the
	// unpack reads them, the fetches that took them wait.
	streams *layerStreams
	cancel  context.CancelFunc // stops the fetches
}

// drop stops what nothing will use: the fetches, and their streams.
func (p *pending) drop() {
	p.cancel()
	p.streams.abandon()
}

// Unpack wraps h, the handler that fetches an image's content: manifests
// of the platforms to unpack are followed, their layers fetched through h
// (at most the limiter's weight at once) and each applied as soon as it
// is fetched; the chain is committed in order and the config labelled with
// containerd.io/gc.ref.snapshot.<snapshotter> so the snapshots live as
// long as the image.
//
// A manifest's layers are taken out of the children the walk sees, and
// fetched by the unpack its config starts once h has handled the config.
// Call Wait after the walk: its errors include the layers'.
func (u *Unpacker) Unpack(h images.Handler) images.Handler {
	return images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := h.Handle(ctx, desc)
		if err != nil {
			return children, err
		}
		switch {
		case images.IsManifestType(desc.MediaType):
			return u.holdLayers(h, children), nil
		case images.IsConfigType(desc.MediaType):
			u.startUnpack(h, desc)
		}
		return children, nil
	})
}

// holdLayers takes a manifest's layers out of its children and starts
// their fetches, which go on alongside the config's: only the applies
// need it. A manifest without an image config (an artifact) keeps its
// children as they are.
func (u *Unpacker) holdLayers(h images.Handler, children []ocispec.Descriptor) []ocispec.Descriptor {
	var (
		config *ocispec.Descriptor
		layers []ocispec.Descriptor
		others []ocispec.Descriptor
	)
	for i, c := range children {
		switch {
		case images.IsLayerType(c.MediaType):
			layers = append(layers, c)
		case images.IsConfigType(c.MediaType) && config == nil:
			config = &children[i]
			others = append(others, c)
		default:
			others = append(others, c)
		}
	}
	if config == nil || len(layers) == 0 {
		return children
	}
	ctx, cancel := context.WithCancel(u.ctx)
	pd := &pending{layers: layers, cancel: cancel}
	if u.streaming {
		pd.streams = newLayerStreams(layers)
		ctx = remotes.WithTee(ctx, pd.streams.open)
	}
	pd.fetches = u.fetchAll(ctx, h, layers)
	// Wait waits for the fetches; their errors are the unpack's to report.
	u.eg.Go(func() error { pd.fetches.wg.Wait(); return nil })
	u.mu.Lock()
	u.waiting[config.Digest] = append(u.waiting[config.Digest], pd)
	u.mu.Unlock()
	return others
}

// startUnpack starts, once the config is fetched, the unpack of the first
// manifest waiting for it, and the fetch of the layers of the others.
func (u *Unpacker) startUnpack(h images.Handler, config ocispec.Descriptor) {
	u.mu.Lock()
	waiting := u.waiting[config.Digest]
	delete(u.waiting, config.Digest)
	var first *pending
	if !u.unpacked[config.Digest] && len(waiting) > 0 {
		first, waiting = waiting[0], waiting[1:]
		u.unpacked[config.Digest] = true
	}
	u.mu.Unlock()

	if first != nil {
		u.eg.Go(func() error {
			err := u.unpack(u.ctx, config, first)
			first.drop()
			if err != nil {
				return fmt.Errorf("unpack image config %s: %w", config.Digest, err)
			}
			return nil
		})
	}
	for _, pd := range waiting {
		pd.streams.abandon()
		u.eg.Go(func() error {
			defer pd.drop()
			return pd.fetches.wait()
		})
	}
}

// Wait waits for every unpack Unpack started and returns the first error.
func (u *Unpacker) Wait() (Result, error) {
	// The walk is over: layers whose config it never handled (it failed
	// first) will not be unpacked.
	u.mu.Lock()
	for _, pds := range u.waiting {
		for _, pd := range pds {
			pd.drop()
		}
	}
	clear(u.waiting)
	u.mu.Unlock()
	if err := u.eg.Wait(); err != nil {
		return Result{}, err
	}
	return Result{Unpacks: int(u.unpacks.Load())}, nil
}

// readConfig reads the image config and checks what the unpack relies on:
// a layers rootfs of valid diff IDs.
func (u *Unpacker) readConfig(ctx context.Context, desc ocispec.Descriptor) (ocispec.Image, error) {
	c, err := images.ReadConfig(ctx, u.content, desc)
	if err != nil {
		return c, fmt.Errorf("read image config: %w", err)
	}
	if c.RootFS.Type != "" && c.RootFS.Type != "layers" {
		return c, fmt.Errorf("image config rootfs type %q, want \"layers\": %w", c.RootFS.Type, errdefs.ErrNotImplemented)
	}
	for _, d := range c.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return c, fmt.Errorf("image config diff ID %q: %v: %w", d, err, errdefs.ErrInvalidArgument)
		}
	}
	return c, nil
}

// chainIDs returns the chain ID of each layer: the first layer's diff ID,
// then the digest of "<parent chain ID> <diff ID>". It names the
// filesystem of a layer together with all below it.
func chainIDs(diffIDs []digest.Digest) []digest.Digest {
	chain := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			chain[i] = d
			continue
		}
		chain[i] = digest.FromString(chain[i-1].String() + " " + d.String())
	}
	return chain
}

// layer is one layer of an unpack.
type layer struct {
	i       int
	desc    ocispec.Descriptor
	diffID  digest.Digest
	chainID string
	parent  string // the chain ID below, "" for the first
}

// unpack applies the layers of pd, being fetched, as the image config
// says.
func (u *Unpacker) unpack(ctx context.Context, config ocispec.Descriptor, pd *pending) error {
	descs := pd.layers
	img, err := u.readConfig(ctx, config)
	if err != nil {
		return err
	}
	diffIDs := img.RootFS.DiffIDs
	if len(descs) != len(diffIDs) {
		return fmt.Errorf("the manifest has %d layers, its config %d diff IDs: %w", len(descs), len(diffIDs), errdefs.ErrInvalidArgument)
	}
	var p *Platform
	imgPlatform := platforms.Normalize(img.Platform)
	for _, c := range u.config.platforms {
		if c.Platform.Match(imgPlatform) {
			p = c
			break
		}
	}
	if p == nil {
		log.G(ctx).WithField("config", config.Digest).WithField("platform", platforms.Format(imgPlatform)).
			Debug("no unpack for this platform, only fetching layers")
		pd.streams.abandon()
		return pd.fetches.wait()
	}
	u.unpacks.Add(1)

	chain := chainIDs(diffIDs)
	layers := make([]layer, len(descs))
	for i, d := range descs {
		layers[i] = layer{i: i, desc: d, diffID: diffIDs[i], chainID: chain[i].String()}
		if i > 0 {
			layers[i].parent = chain[i-1].String()
		}
	}

	// Layers whose chain is committed already need neither fetch nor
	// apply; a committed snapshot's parents all are, so look top down.
	start := 0
	for i := len(layers) - 1; i >= 0; i-- {
		ok, err := committed(ctx, p.Snapshotter, layers[i].chainID)
		if err != nil {
			return err
		}
		if ok {
			start = i + 1
			break
		}
	}
	for _, l := range layers[:start] {
		u.report(Progress{Layer: l.desc.Digest.String(), Event: EventAlreadyExists, Total: l.desc.Size})
	}
	// Their fetches, started before this was known, are of no use; one
	// that took its layer's stream must not wait on it.
	pd.fetches.skip(start)
	if pd.streams != nil {
		for _, ls := range pd.streams.of[:start] {
			ls.pr.CloseWithError(errStreamOver)
		}
	}

	var done []string // the chain IDs this unpack committed
	if start < len(layers) {
		todo := layers[start:]
		parallel := slices.Contains(p.SnapshotterCapabilities, CapRebase)
		// In parallel, each layer is applied as it downloads, if the
		// applier can read it from the fetch rather than the store.
		streams := pd.streams
		if _, ok := p.Applier.(diff.StreamApplier); !ok || !parallel {
			streams.abandon()
			streams = nil
		}
		fetches := pd.fetches
		if parallel {
			done, err = u.applyParallel(ctx, p, todo, fetches, streams)
			if errors.Is(err, errNoRebase) {
				// Something between us and the snapshotter (a metadata
				// layer) drops the parent: go the long way. The layers
				// are fetched, or being fetched, already.
				log.G(ctx).WithError(err).Warn("unpack: parallel unpack failed, unpacking layers in order")
				u.rollback(ctx, p.Snapshotter, done)
				done, err = u.applySerial(ctx, p, todo, fetches)
			}
		} else {
			done, err = u.applySerial(ctx, p, todo, fetches)
		}
		if err != nil {
			pd.cancel() // their layers are of no use now
		}
		if ferr := fetches.wait(); err == nil {
			err = ferr
		}
		if err != nil {
			u.rollback(ctx, p.Snapshotter, done)
			return err
		}
	}

	if len(layers) == 0 {
		return nil
	}
	label := labelGCRefSnapshot + p.SnapshotterKey
	info := content.Info{Digest: config.Digest, Labels: map[string]string{label: layers[len(layers)-1].chainID}}
	if _, err := u.content.Update(ctx, info, "labels."+label); err != nil {
		// Nothing would keep the chain from the collector.
		u.rollback(ctx, p.Snapshotter, done)
		return fmt.Errorf("label image config with its snapshot: %w", err)
	}
	return nil
}

// committed reports whether sn has a committed snapshot named name.
func committed(ctx context.Context, sn snapshots.Snapshotter, name string) (bool, error) {
	info, err := sn.Stat(ctx, name)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat snapshot %s: %w", name, err)
	}
	return info.Kind == snapshots.KindCommitted, nil
}

// applySerial applies and commits each layer in turn on its committed
// parent. It returns the chain IDs it committed.
func (u *Unpacker) applySerial(ctx context.Context, p *Platform, layers []layer, fetches *fetches) (done []string, err error) {
	for _, l := range layers {
		if err := fetches.waitFor(ctx, l.i); err != nil {
			return done, err
		}
		key, mounts, exists, err := u.prepare(ctx, p, l, l.parent)
		if err != nil {
			return done, err
		}
		if exists {
			continue
		}
		if err := u.apply(ctx, p, l, key, mounts); err != nil {
			u.remove(ctx, p.Snapshotter, key)
			return done, err
		}
		ok, err := u.commit(ctx, p, l, key)
		if err != nil {
			return done, err
		}
		if ok {
			done = append(done, l.chainID)
		}
	}
	return done, nil
}

// extracted is a layer applied in parallel, waiting for its commit.
type extracted struct {
	key    string // "" if the chain existed already
	err    error
	exists bool
}

// applyParallel applies each layer, once fetched, into a snapshot with no
// parent, and commits them bottom up onto their parents. On the first
// failure the rest are stopped and their snapshots removed. It returns
// the chain IDs it committed.
func (u *Unpacker) applyParallel(ctx context.Context, p *Platform, layers []layer, fetches *fetches, streams *layerStreams) (done []string, err error) {
	// Fetches that get to copying after this returns do it alone.
	defer streams.abandon()
	// The first failure, wherever it happens, stops the other layers,
	// which then report it as the cause.
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	results := make([]chan extracted, len(layers))
	for j, l := range layers {
		results[j] = make(chan extracted, 1)
		go func() {
			var r extracted
			if streams != nil {
				r = u.extractStream(actx, p, l, fetches, streams.of[l.i])
			} else {
				r = u.extract(actx, p, l, fetches)
			}
			if r.err != nil {
				cancel(r.err)
			}
			results[j] <- r
		}()
	}
	// Every result is received, whatever happens, so that no goroutine
	// outlives this and every active snapshot is committed or removed.
	for j, l := range layers {
		r := <-results[j]
		switch {
		case r.err != nil:
			if err == nil {
				err = r.err
			}
		case r.exists:
		case err != nil:
			u.remove(ctx, p.Snapshotter, r.key)
		default:
			ok, cerr := u.commit(ctx, p, l, r.key)
			if cerr != nil {
				err = cerr
				cancel(cerr)
			} else if ok {
				done = append(done, l.chainID)
			}
		}
	}
	if cause := context.Cause(actx); err != nil && cause != nil && ctx.Err() == nil {
		err = cause // not a layer's report of the cancellation
	}
	return done, err
}

// extract waits for the j-th fetch, prepares a parentless snapshot and
// applies the layer into it. On failure the snapshot is removed.
func (u *Unpacker) extract(ctx context.Context, p *Platform, l layer, fetches *fetches) extracted {
	if err := fetches.waitFor(ctx, l.i); err != nil {
		return extracted{err: err}
	}
	if err := u.applies.Acquire(ctx, 1); err != nil {
		return extracted{err: err}
	}
	defer u.applies.Release(1)
	key, mounts, exists, err := u.prepare(ctx, p, l, "")
	if err != nil || exists {
		return extracted{err: err, exists: exists}
	}
	if l.parent != "" {
		mounts = upperMounts(mounts)
	}
	if err := u.apply(ctx, p, l, key, mounts); err != nil {
		u.remove(ctx, p.Snapshotter, key)
		return extracted{err: err}
	}
	return extracted{key: key}
}

// extractStream prepares a parentless snapshot for the j-th layer and
// applies the layer into it from its fetch's bytes as they arrive, or,
// if the fetch does not copy it from its first byte (it is there
// already, or its ingest resumed), from the store once fetched. Nothing
// applied counts until the fetch has verified the blob's digest. On
// failure the snapshot is removed.
func (u *Unpacker) extractStream(ctx context.Context, p *Platform, l layer, fetches *fetches, ls *layerStream) extracted {
	// Whatever happens, the fetch must not wait on a reader that is gone.
	defer ls.pr.CloseWithError(errStreamOver)
	key, mounts, exists, err := u.prepare(ctx, p, l, "")
	if err != nil || exists {
		return extracted{err: err, exists: exists}
	}
	if l.parent != "" {
		mounts = upperMounts(mounts)
	}
	select {
	case <-ls.claimed:
	case <-fetches.doneOf(l.i):
	case <-ctx.Done():
	}
	streamed := !ls.withdraw()
	var (
		aerr error
		read countingReader
	)
	if streamed {
		// A cancelled unpack stops the apply, even if its fetch stalls.
		stop := context.AfterFunc(ctx, func() { ls.pr.CloseWithError(context.Cause(ctx)) })
		read.r = ls.pr
		aerr = u.applyFrom(ctx, p, l, key, mounts, &read)
		stop()
		// An apply that stopped early must not leave the fetch blocked.
		ls.pr.CloseWithError(errStreamOver)
	}
	if err := fetches.waitFor(ctx, l.i); err != nil {
		u.remove(ctx, p.Snapshotter, key)
		return extracted{err: err}
	}
	// Only an applier that declined the layer before reading any of it
	// leaves the snapshot as prepared, to apply from the store.
	if streamed && (read.n > 0 || !errdefs.IsNotImplemented(aerr)) {
		if aerr != nil {
			u.remove(ctx, p.Snapshotter, key)
			return extracted{err: aerr}
		}
		return extracted{key: key}
	}
	// Not streamed, or the applier could not stream this layer (having
	// read nothing): apply from the store, like extract.
	if err := u.applies.Acquire(ctx, 1); err != nil {
		u.remove(ctx, p.Snapshotter, key)
		return extracted{err: err}
	}
	defer u.applies.Release(1)
	if err := u.apply(ctx, p, l, key, mounts); err != nil {
		u.remove(ctx, p.Snapshotter, key)
		return extracted{err: err}
	}
	return extracted{key: key}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// errStreamOver closes the reading end of a layer's stream: the fetch
// then goes on without it.
var errStreamOver = errors.New("the unpacker no longer reads this layer's stream")

// layerStreams are the pipes from an unpack's layer fetches to their
// applies, one a layer, made before the fetches start.
type layerStreams struct {
	of []*layerStream // by layer

	mu sync.Mutex
	// unclaimed holds, by blob digest, the streams no fetch has taken;
	// a blob that two layers share is copied once, into the first.
	unclaimed map[digest.Digest][]*layerStream
	closed    bool
}

type layerStream struct {
	s       *layerStreams
	digest  digest.Digest
	pr      *io.PipeReader
	pw      *io.PipeWriter
	claimed chan struct{} // closed when a fetch takes pw
}

func newLayerStreams(layers []ocispec.Descriptor) *layerStreams {
	s := &layerStreams{unclaimed: map[digest.Digest][]*layerStream{}}
	for _, l := range layers {
		pr, pw := io.Pipe()
		ls := &layerStream{s: s, digest: l.Digest, pr: pr, pw: pw, claimed: make(chan struct{})}
		s.of = append(s.of, ls)
		s.unclaimed[ls.digest] = append(s.unclaimed[ls.digest], ls)
	}
	return s
}

// open gives a fetch that copies desc from its first byte the writing
// end of the stream of a layer that is desc, if one is left. Its writes
// wait for the apply to read them.
func (s *layerStreams) open(desc ocispec.Descriptor) remotes.Tee {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.unclaimed[desc.Digest]
	if s.closed || len(list) == 0 {
		return nil
	}
	ls := list[0]
	s.unclaimed[desc.Digest] = list[1:]
	close(ls.claimed)
	return ls.pw
}

// withdraw takes ls from the fetches' reach, and reports false if a
// fetch has taken it already.
func (ls *layerStream) withdraw() bool {
	s := ls.s
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-ls.claimed:
		return false
	default:
	}
	s.unclaimed[ls.digest] = slices.DeleteFunc(s.unclaimed[ls.digest], func(o *layerStream) bool { return o == ls })
	return true
}

// abandon makes the fetches copy alone: those that took a stream
// already, and those to come. A nil *layerStreams has none.
func (s *layerStreams) abandon() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	for _, ls := range s.of {
		ls.pr.CloseWithError(errStreamOver)
	}
}

// upperMounts turns the writable bind mount of a rebase-capable
// snapshotter's parentless snapshot into the overlay mount it will be
// the upper directory of, so that the applier writes whiteouts as
// overlay's (which read nothing below) instead of deleting files that
// are not there.
func upperMounts(mounts []mount.Mount) []mount.Mount {
	if len(mounts) != 1 || mounts[0].Type != "bind" || mounts[0].ReadOnly() {
		return mounts
	}
	return []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"upperdir=" + mounts[0].Source}}}
}

// snapshotLabels are the labels of layer l's snapshot: the annotations
// its descriptor passes on to snapshots (less owner mappings), its chain
// ID, diff ID and parent.
func snapshotLabels(l layer) map[string]string {
	labels := snapshots.FilterInheritedLabels(l.desc.Annotations)
	if labels == nil {
		labels = map[string]string{}
	}
	delete(labels, labelSnapshotUIDMapping)
	delete(labels, labelSnapshotGIDMapping)
	labels[snapshots.LabelSnapshotRef] = l.chainID
	labels[labelSnapshotDiffID] = l.diffID.String()
	if l.parent != "" {
		labels[labelSnapshotParent] = l.parent
	}
	return labels
}

func snapshotOpts(p *Platform, l layer) []snapshots.Opt {
	return append(slices.Clone(p.SnapshotOpts), snapshots.WithLabels(snapshotLabels(l)))
}

// prepare makes the active snapshot to apply l into, under a fresh
// temporary key. exists reports that the chain was committed meanwhile,
// by someone else, and nothing is to be done.
func (u *Unpacker) prepare(ctx context.Context, p *Platform, l layer, parent string) (key string, mounts []mount.Mount, exists bool, err error) {
	opts := snapshotOpts(p, l)
	for try := 0; try < 3; try++ {
		key = fmt.Sprintf(snapshots.UnpackKeyFormat, uniquePart(), l.chainID)
		mounts, err = p.Snapshotter.Prepare(ctx, key, parent, opts...)
		if err == nil {
			return key, mounts, false, nil
		}
		if !errdefs.IsAlreadyExists(err) {
			return "", nil, false, fmt.Errorf("prepare snapshot for layer %s: %w", l.desc.Digest, err)
		}
		// The key is taken: by the chain itself, or, rarely, by another
		// unpack's key, and a new one will do.
		if ok, serr := committed(ctx, p.Snapshotter, l.chainID); serr != nil || ok {
			if ok {
				u.report(Progress{Layer: l.desc.Digest.String(), Event: EventAlreadyExists, Total: l.desc.Size})
			}
			return "", nil, ok, serr
		}
	}
	return "", nil, false, fmt.Errorf("prepare snapshot for layer %s: %w", l.desc.Digest, err)
}

// apply applies l onto mounts and checks that what was applied is the
// layer the config names.
func (u *Unpacker) apply(ctx context.Context, p *Platform, l layer, key string, mounts []mount.Mount) error {
	return u.applyFrom(ctx, p, l, key, mounts, nil)
}

// applyFrom is apply with the layer's bytes read from r, if not nil,
// rather than from the content store; p.Applier must then be a
// diff.StreamApplier.
func (u *Unpacker) applyFrom(ctx context.Context, p *Platform, l layer, key string, mounts []mount.Mount, r io.Reader) error {
	name := l.desc.Digest.String()
	opts := append(slices.Clone(p.ApplyOpts), diff.WithDiffID(l.diffID))
	if u.config.progress != nil {
		u.report(Progress{Layer: name, Event: EventUnpacking, Total: l.desc.Size})
		opts = append(opts, diff.WithProgress(func(d ocispec.Descriptor, n int64) {
			u.report(Progress{Layer: name, Event: EventUnpacking, Bytes: n, Total: d.Size})
		}))
	}
	var (
		applied ocispec.Descriptor
		err     error
	)
	if r != nil {
		applied, err = p.Applier.(diff.StreamApplier).ApplyStream(ctx, l.desc, r, mounts, opts...)
		if errdefs.IsNotImplemented(err) {
			return err // unwrapped: the caller falls back to Apply
		}
	} else {
		applied, err = p.Applier.Apply(ctx, l.desc, mounts, opts...)
	}
	if err != nil {
		return fmt.Errorf("apply layer %s (%s) to %s snapshot %q: %w", l.desc.Digest, l.desc.MediaType, p.SnapshotterKey, key, err)
	}
	if applied.Digest != l.diffID {
		return fmt.Errorf("layer %s unpacks to %s, but the image config names %s: %w",
			l.desc.Digest, applied.Digest, l.diffID, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// commit commits key as l's chain ID, on its parent, and labels the blob
// with its now verified diff ID. It reports false, having removed key, if
// the chain was committed meanwhile by someone else.
func (u *Unpacker) commit(ctx context.Context, p *Platform, l layer, key string) (bool, error) {
	opts := snapshotOpts(p, l)
	if l.parent != "" {
		// A no-op for a snapshot prepared on its parent; a rebase for
		// one prepared without.
		opts = append(opts, withParent(l.parent))
	}
	if err := p.Snapshotter.Commit(ctx, l.chainID, key, opts...); err != nil {
		u.remove(ctx, p.Snapshotter, key)
		if errdefs.IsAlreadyExists(err) {
			u.report(Progress{Layer: l.desc.Digest.String(), Event: EventAlreadyExists, Total: l.desc.Size})
			return false, nil
		}
		return false, fmt.Errorf("commit snapshot of layer %s as %s: %w", l.desc.Digest, l.chainID, err)
	}
	// A snapshotter (or metadata layer) that does not rebase drops the
	// parent: the chain would be wrong, so it must not stand.
	info, err := p.Snapshotter.Stat(ctx, l.chainID)
	if err == nil && info.Parent != l.parent {
		err = fmt.Errorf("committed with parent %q, want %q: %w: %w", info.Parent, l.parent, errNoRebase, errdefs.ErrNotImplemented)
	}
	if err == nil {
		blob := content.Info{Digest: l.desc.Digest, Labels: map[string]string{images.LabelUncompressed: l.diffID.String()}}
		if _, err = u.content.Update(ctx, blob, "labels."+images.LabelUncompressed); err != nil {
			err = fmt.Errorf("label layer blob: %w", err)
		}
	}
	if err != nil {
		u.remove(ctx, p.Snapshotter, l.chainID)
		return false, fmt.Errorf("snapshot %s of layer %s: %w", l.chainID, l.desc.Digest, err)
	}
	u.report(Progress{Layer: l.desc.Digest.String(), Event: EventUnpacked, Bytes: l.desc.Size, Total: l.desc.Size})
	return true, nil
}

// errNoRebase is the failure of a commit that should have rebased.
var errNoRebase = errors.New("the snapshotter does not rebase on commit")

func withParent(parent string) snapshots.Opt {
	return func(info *snapshots.Info) error {
		info.Parent = parent
		return nil
	}
}

// remove removes snapshot key, even once ctx is cancelled: it is the
// cleanup of a failure, often a cancellation.
func (u *Unpacker) remove(ctx context.Context, sn snapshots.Snapshotter, key string) {
	if err := sn.Remove(context.WithoutCancel(ctx), key); err != nil && !errdefs.IsNotFound(err) {
		log.G(ctx).WithError(err).WithField("key", key).Warn("unpack: remove snapshot")
	}
}

// rollback removes the chain snapshots a failed unpack committed, top
// down, so that the failure leaves none of the image's chain behind. One
// that has children meanwhile (another image's) stays, as its parents.
func (u *Unpacker) rollback(ctx context.Context, sn snapshots.Snapshotter, done []string) {
	for i := len(done) - 1; i >= 0; i-- {
		if err := sn.Remove(context.WithoutCancel(ctx), done[i]); err != nil {
			if !errdefs.IsNotFound(err) {
				log.G(ctx).WithError(err).WithField("snapshot", done[i]).Warn("unpack: roll back snapshot")
			}
			return
		}
	}
}

func (u *Unpacker) report(p Progress) {
	if u.config.progress == nil {
		return
	}
	u.progressMu.Lock()
	defer u.progressMu.Unlock()
	u.config.progress(p)
}

// fetches are the fetches of an unpack's layers.
type fetches struct {
	// of maps a layer to its fetch: a blob that several layers share (an
	// empty layer, say) is fetched once.
	of      []int
	done    []chan struct{} // closed when the fetch is over
	errs    []error         // set before done is closed, on failure
	cancels []context.CancelFunc
	skipped []atomic.Bool // cancelled as of no use: its error is none
	wg      sync.WaitGroup
}

// skip cancels the fetches only layers before the i-th need.
func (f *fetches) skip(i int) {
	needed := map[int]bool{}
	for _, j := range f.of[i:] {
		needed[j] = true
	}
	for _, j := range f.of[:i] {
		if !needed[j] {
			f.skipped[j].Store(true)
			f.cancels[j]()
		}
	}
}

// fetchAll fetches descs through h, at most the limiter's weight at
// once, started in order so that with a small limit the lower layers,
// which a serial unpack needs first, come first.
func (u *Unpacker) fetchAll(ctx context.Context, h images.Handler, descs []ocispec.Descriptor) *fetches {
	f := &fetches{of: make([]int, len(descs))}
	var blobs []ocispec.Descriptor
	seen := map[digest.Digest]int{}
	for i, d := range descs {
		j, ok := seen[d.Digest]
		if !ok {
			j = len(blobs)
			seen[d.Digest] = j
			blobs = append(blobs, d)
			f.done = append(f.done, make(chan struct{}))
		}
		f.of[i] = j
	}
	f.errs = make([]error, len(blobs))
	f.skipped = make([]atomic.Bool, len(blobs))
	bctxs := make([]context.Context, len(blobs))
	for j := range blobs {
		var cancel context.CancelFunc
		bctxs[j], cancel = context.WithCancel(ctx)
		f.cancels = append(f.cancels, cancel)
	}
	f.wg.Add(len(blobs))
	go func() {
		for j, d := range blobs {
			if l := u.config.limiter; l != nil {
				if err := l.Acquire(ctx, 1); err != nil {
					for ; j < len(blobs); j++ {
						f.errs[j] = err
						close(f.done[j])
						f.wg.Done()
					}
					return
				}
			}
			go func() {
				defer f.wg.Done()
				defer f.cancels[j]()
				_, err := h.Handle(bctxs[j], d)
				if l := u.config.limiter; l != nil {
					l.Release(1)
				}
				if err != nil && !errors.Is(err, images.ErrSkipDesc) {
					f.errs[j] = fmt.Errorf("fetch layer %s: %w", d.Digest, err)
				}
				close(f.done[j])
			}()
		}
	}()
	return f
}

// doneOf is closed once the fetch of the i-th layer is over.
func (f *fetches) doneOf(i int) <-chan struct{} { return f.done[f.of[i]] }

// waitFor waits for the fetch of the i-th layer.
func (f *fetches) waitFor(ctx context.Context, i int) error {
	j := f.of[i]
	select {
	case <-f.done[j]:
		return f.errs[j]
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// wait waits for all fetches and returns the first failure.
func (f *fetches) wait() error {
	f.wg.Wait()
	for j, err := range f.errs {
		if err != nil && !f.skipped[j].Load() {
			return err
		}
	}
	return nil
}

// uniquePart makes temporary snapshot keys unique.
func uniquePart() string {
	var b [9]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
