package remotes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/platforms"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/log"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"
)

// MakeRefKey returns the ingest ref under which desc is fetched:
// "<kind>-<digest>", as containerd names them, so that a retried fetch
// resumes the same ingest and ctr's progress shows what each one is.
func MakeRefKey(ctx context.Context, desc ocispec.Descriptor) string {
	key := desc.Digest.String()
	switch mt := desc.MediaType; {
	case images.IsManifestType(mt):
		return "manifest-" + key
	case images.IsIndexType(mt):
		return "index-" + key
	case images.IsLayerType(mt):
		return "layer-" + key
	case images.IsConfigType(mt):
		return "config-" + key
	}
	return "unknown-" + key
}

// copyBufSize is the size of the writes into the content store.
const copyBufSize = 1 << 20

// FetchHandler returns a handler that copies each descriptor it is given
// from fetcher into ingester, verifying size and digest, resuming an ingest
// left by an earlier attempt, and doing nothing for content already there.
// It returns no children: chain it with images.ChildrenHandler.
func FetchHandler(ingester content.Ingester, fetcher Fetcher) images.HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if desc.MediaType == images.MediaTypeDockerSchema1Manifest {
			return nil, fmt.Errorf("%s: docker schema 1 manifests are not supported: %w", desc.Digest, errdefs.ErrNotImplemented)
		}
		if err := Fetch(ctx, ingester, fetcher, desc); err != nil {
			return nil, err
		}
		return nil, nil
	}
}

// Tee receives a copy of a blob as Fetch copies it (an *io.PipeWriter
// is one).
type Tee interface {
	io.Writer
	// CloseWithError ends the copy: with nil once the blob is all there
	// and its digest verified, else with what went wrong.
	CloseWithError(error) error
}

type teeKey struct{}

// WithTee returns a context under which Fetch, whenever it copies a blob
// from its first byte, also writes the bytes to the Tee that open returns
// for its descriptor (none if nil), so that they can be used as they
// arrive; a layer can be unpacked while it downloads. Fetch closes the
// Tee on every return. A blob that is there already, or whose ingest is
// resumed, is not copied from its first byte, and open is not called.
// A Tee that fails a write is dropped; the fetch goes on without it.
func WithTee(ctx context.Context, open func(ocispec.Descriptor) Tee) context.Context {
	return context.WithValue(ctx, teeKey{}, open)
}

type downloadedKey struct{}

// WithDownloaded returns a context under which Fetch calls f once it is
// done reading a blob from the remote, before it verifies and commits
// what it read: a limit on downloads can let the next one start while
// this one's commit syncs the blob to disk. f may be called more than
// once, and not at all for a blob that is not read.
func WithDownloaded(ctx context.Context, f func()) context.Context {
	return context.WithValue(ctx, downloadedKey{}, f)
}

// LimitDownload takes one of limit's slots for a layer's fetch (limit nil,
// or a blob other than a layer: no limit) and returns the context to fetch
// under and the release to defer. The slot is taken around the copy alone,
// not around handlers, which may wait on one another (an unpacker's); and
// it is given back once the bytes are read (WithDownloaded), before the
// commit's sync, so the next download need not wait for this one's disk.
// Layers only: manifests and configs are small, and an unpacker's layer
// fetches wait for their config, which must not wait for them.
func LimitDownload(ctx context.Context, limit *semaphore.Weighted, desc ocispec.Descriptor) (context.Context, func(), error) {
	if limit == nil || !images.IsLayerType(desc.MediaType) {
		return ctx, func() {}, nil
	}
	if err := limit.Acquire(ctx, 1); err != nil {
		return ctx, nil, err
	}
	release := sync.OnceFunc(func() { limit.Release(1) })
	return WithDownloaded(ctx, release), release, nil
}

type commitOptsKey struct{}

// WithCommitOpts returns a context under which Fetch commits the blobs it
// copies with opts as well: labels a caller would set once the blob is
// there (its source, say) are then written with it, in the same
// transaction. A blob that is there already is not committed, so a
// caller that needs them sets them itself then.
func WithCommitOpts(ctx context.Context, opts ...content.Opt) context.Context {
	return context.WithValue(ctx, commitOptsKey{}, opts)
}

// tee is a Fetch's Tee, if any.
type tee struct {
	w      Tee
	failed bool // w failed a write, and gets no more
}

func (t *tee) close(err error) {
	if t.w != nil {
		t.w.CloseWithError(err)
		t.w = nil
	}
}

// teeWriter writes to the ingest, then to the tee; only the ingest's
// errors are the copy's.
type teeWriter struct {
	cw content.Writer
	t  *tee
}

func (w teeWriter) Write(p []byte) (int, error) {
	n, err := w.cw.Write(p)
	if n > 0 && w.t.w != nil && !w.t.failed {
		if _, terr := w.t.w.Write(p[:n]); terr != nil {
			w.t.failed = true
		}
	}
	return n, err
}

// Fetch copies desc from fetcher into ingester (see FetchHandler).
func Fetch(ctx context.Context, ingester content.Ingester, fetcher Fetcher, desc ocispec.Descriptor) (err error) {
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("fetch %q: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if desc.Size < 0 {
		return fmt.Errorf("fetch %s: negative size %d: %w", desc.Digest, desc.Size, errdefs.ErrInvalidArgument)
	}
	if ip, ok := ingester.(content.InfoProvider); ok {
		if _, err := ip.Info(ctx, desc.Digest); err == nil {
			return nil
		}
	}
	ref := MakeRefKey(ctx, desc)
	cw, err := openWriter(ctx, ingester, ref, desc)
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			return nil
		}
		return fmt.Errorf("fetch %s: open ingest %s: %w", desc.Digest, ref, err)
	}
	defer cw.Close()
	var t tee
	defer func() {
		if t.w != nil {
			cause := err
			if cause == nil {
				cause = errors.New("the fetch ended before its blob was verified")
			}
			t.close(cause)
		}
	}()

	st, err := cw.Status()
	if err != nil {
		return fmt.Errorf("fetch %s: status of ingest %s: %w", desc.Digest, ref, err)
	}
	offset := st.Offset
	if offset > desc.Size {
		// Not what we are fetching: start again.
		if err := cw.Truncate(0); err != nil {
			return fmt.Errorf("fetch %s: truncate ingest %s: %w", desc.Digest, ref, err)
		}
		offset = 0
	}
	if offset < desc.Size {
		if err := copyFrom(ctx, cw, fetcher, desc, offset, &t); err != nil {
			return err
		}
	}

	// Check before committing: content with the wrong digest is of no
	// use to a retry, which had better start again from nothing.
	if got := cw.Digest(); got != desc.Digest {
		if err := cw.Truncate(0); err != nil {
			log.G(ctx).WithError(err).WithField("ref", ref).Warn("truncate ingest of bad content")
		}
		return fmt.Errorf("fetch %s: the remote sent content with digest %s: %w", desc.Digest, got, errdefs.ErrFailedPrecondition)
	}
	// What the tee had is verified: its reader may go on. The commit that
	// follows is still this fetch's to fail.
	t.close(nil)
	opts, _ := ctx.Value(commitOptsKey{}).([]content.Opt)
	if err := cw.Commit(ctx, desc.Size, desc.Digest, opts...); err != nil && !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("fetch %s: commit: %w", desc.Digest, err)
	}
	return nil
}

// openWriter opens the ingest ref. The same blob may be fetched twice at
// once (a layer shared by two manifests of an index): the second waits
// for the first to finish or give up, rather than failing.
func openWriter(ctx context.Context, ingester content.Ingester, ref string, desc ocispec.Descriptor) (content.Writer, error) {
	wait := 50 * time.Millisecond
	for {
		cw, err := ingester.Writer(ctx, content.WithRef(ref), content.WithDescriptor(desc))
		if err == nil || !errdefs.IsUnavailable(err) {
			return cw, err
		}
		log.G(ctx).WithField("ref", ref).Debug("ingest in use: waiting")
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (waited for it: %w)", err, ctx.Err())
		}
		wait = min(2*wait, time.Second)
	}
}

// copyFrom writes desc's bytes from offset on into cw, and checks the
// remote has neither more nor fewer.
func copyFrom(ctx context.Context, cw content.Writer, fetcher Fetcher, desc ocispec.Descriptor, offset int64, t *tee) error {
	rc, err := fetcher.Fetch(ctx, desc)
	if err != nil {
		return err
	}
	defer rc.Close()
	if f, ok := ctx.Value(downloadedKey{}).(func()); ok {
		defer f()
	}
	if offset > 0 {
		s, ok := rc.(io.Seeker)
		if ok {
			_, err = s.Seek(offset, io.SeekStart)
		}
		if !ok || err != nil {
			// Cannot skip: write it all again.
			if err := cw.Truncate(0); err != nil {
				return fmt.Errorf("fetch %s: restart ingest: %w", desc.Digest, err)
			}
			offset = 0
		}
	}

	var w io.Writer = cw
	if open, ok := ctx.Value(teeKey{}).(func(ocispec.Descriptor) Tee); ok && offset == 0 {
		if t.w = open(desc); t.w != nil {
			w = teeWriter{cw: cw, t: t}
		}
	}

	want := desc.Size - offset
	buf := make([]byte, min(copyBufSize, max(want, 1)))
	// Hide WriterTo/ReaderFrom so that the writes stay large.
	n, err := io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{io.LimitReader(rc, want)}, buf)
	if err != nil {
		return fmt.Errorf("fetch %s: at %d of %d bytes: %w", desc.Digest, offset+n, desc.Size, err)
	}
	if n < want {
		return fmt.Errorf("fetch %s: the remote sent %d of %d bytes: %w", desc.Digest, offset+n, desc.Size, io.ErrUnexpectedEOF)
	}
	// A fetcher that has more than desc.Size is not serving desc.
	var one [1]byte
	if m, _ := io.ReadFull(rc, one[:]); m > 0 {
		return fmt.Errorf("fetch %s: the remote has more than its %d bytes: %w", desc.Digest, desc.Size, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// PushContent pushes desc and everything it references from provider
// through pusher: children before parents, so that a registry never sees a
// manifest naming a blob it lacks; at most limiter's weight at once.
// platform, if set, limits an index's manifests to those it matches.
// wrapper, if set, wraps the handler that walks the graph (to report
// progress, for instance).
//
// Blobs go up concurrently as the graph is walked; manifests and indexes
// are kept back and pushed once every blob is, deepest first. When
// provider can tell blobs' labels, their containerd.io/distribution.source
// labels are passed to the pusher as annotations, so that a registry can
// mount a blob it holds in another repository rather than receive it.
func PushContent(ctx context.Context, pusher Pusher, desc ocispec.Descriptor, provider content.Provider, limiter *semaphore.Weighted, platform platforms.MatchComparer, wrapper func(images.Handler) images.Handler) error {
	var (
		mu        sync.Mutex
		seen      = map[string]bool{}
		manifests []ocispec.Descriptor
	)
	infos, _ := provider.(content.InfoProvider)
	children := images.ChildrenHandler(provider)
	if platform != nil {
		children = images.FilterPlatforms(children, platform)
	}

	walk := images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		mu.Lock()
		if seen[desc.Digest.String()] {
			mu.Unlock()
			return nil, nil
		}
		seen[desc.Digest.String()] = true
		isManifest := images.IsManifestType(desc.MediaType) || images.IsIndexType(desc.MediaType)
		if isManifest {
			manifests = append(manifests, desc)
		}
		mu.Unlock()

		if !isManifest {
			if infos != nil {
				desc = withSourceAnnotations(ctx, infos, desc)
			}
			return nil, push(ctx, pusher, provider, desc)
		}
		return children(ctx, desc)
	})

	var h images.Handler = walk
	if wrapper != nil {
		h = wrapper(h)
	}
	if err := images.Dispatch(ctx, h, limiter, desc); err != nil {
		return err
	}
	// A parent was always recorded before its children: the reverse
	// order puts every manifest after those it references.
	for _, m := range slices.Backward(manifests) {
		if err := push(ctx, pusher, provider, m); err != nil {
			return fmt.Errorf("%s %s: %w", m.MediaType, m.Digest, err)
		}
	}
	return nil
}

// push sends one blob from provider through pusher; a blob the remote
// has already is done.
func push(ctx context.Context, pusher Pusher, provider content.Provider, desc ocispec.Descriptor) error {
	cw, err := pusher.Push(ctx, desc)
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			return nil
		}
		return err
	}
	defer cw.Close()

	ra, err := provider.ReaderAt(ctx, desc)
	if err != nil {
		return fmt.Errorf("push %s: %w", desc.Digest, err)
	}
	defer ra.Close()
	if ra.Size() != desc.Size {
		return fmt.Errorf("push %s: the local blob has %d bytes, its descriptor %d: %w", desc.Digest, ra.Size(), desc.Size, errdefs.ErrFailedPrecondition)
	}
	buf := make([]byte, min(copyBufSize, max(desc.Size, 1)))
	if _, err := io.CopyBuffer(struct{ io.Writer }{cw}, io.NewSectionReader(ra, 0, desc.Size), buf); err != nil {
		return fmt.Errorf("push %s: %w", desc.Digest, err)
	}
	if err := cw.Commit(ctx, desc.Size, desc.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("push %s: %w", desc.Digest, err)
	}
	return nil
}

// withSourceAnnotations copies desc's containerd.io/distribution.source.*
// labels into its annotations, for the pusher to find mount sources.
func withSourceAnnotations(ctx context.Context, infos content.InfoProvider, desc ocispec.Descriptor) ocispec.Descriptor {
	info, err := infos.Info(ctx, desc.Digest)
	if err != nil {
		if !errdefs.IsNotFound(err) {
			log.G(ctx).WithError(err).WithField("digest", desc.Digest).Debug("labels of pushed content")
		}
		return desc
	}
	var annotations map[string]string
	for k, v := range info.Labels {
		if strings.HasPrefix(k, images.LabelDistributionSource+".") {
			if annotations == nil {
				annotations = maps.Clone(desc.Annotations)
				if annotations == nil {
					annotations = map[string]string{}
				}
			}
			annotations[k] = v
		}
	}
	if annotations != nil {
		desc.Annotations = annotations
	}
	return desc
}
