package local

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/remotes"
	"github.com/llitfkitfk/containerd/transfer"
)

// push sends an image of the store, and everything it references, to dst.
func (s *Service) push(ctx context.Context, src transfer.ImageGetter, dst transfer.ImagePusher, tc *transfer.Config) error {
	matcher := platforms.All
	if pg, ok := src.(platformsGetter); ok {
		if ps := pg.Platforms(); len(ps) > 0 {
			matcher = platforms.Any(ps...)
		}
	}
	img, err := src.Get(ctx, s.images)
	if err != nil {
		return err
	}
	emit(tc, transfer.Progress{Event: "Pushing to " + describe(dst)})
	target := img.Target
	emit(tc, transfer.Progress{Event: "pushing content", Name: img.Name, Desc: &target})

	pusher, err := dst.Pusher(ctx, img.Target)
	if err != nil {
		return err
	}

	var wrapper func(images.Handler) images.Handler
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := newTracker(tc.Progress, img.Name, "uploading")
	if t != nil {
		pp := &progressPusher{Pusher: pusher, t: t, active: map[string]*upload{}}
		pusher = pp
		wrapper = func(h images.Handler) images.Handler {
			return images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
				t.add(desc)
				kids, err := h.Handle(ctx, desc)
				t.children(desc, kids)
				return kids, err
			})
		}
		t.start(ctx, pp.statuses)
		defer t.finishPolling()
	}

	if err := remotes.PushContent(ctx, pusher, img.Target, s.content, s.uploads, matcher, wrapper); err != nil {
		return err
	}
	t.finishPolling()
	emit(tc, transfer.Progress{Event: "pushed content", Name: img.Name, Desc: &target})
	emit(tc, transfer.Progress{Event: "Completed push to " + describe(dst), Desc: &target})
	return nil
}

// progressPusher counts the bytes written through each upload, for the
// tracker to poll as it polls the content store's ingests on a pull.
type progressPusher struct {
	remotes.Pusher
	t *tracker

	mu     sync.Mutex
	active map[string]*upload
}

type upload struct {
	desc    ocispec.Descriptor
	written atomic.Int64
	started time.Time
}

func (p *progressPusher) Push(ctx context.Context, desc ocispec.Descriptor) (content.Writer, error) {
	w, err := p.Pusher.Push(ctx, desc)
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			p.t.exists(desc)
		}
		return nil, err
	}
	ref := refKey(desc)
	u := &upload{desc: desc, started: time.Now()}
	p.mu.Lock()
	p.active[ref] = u
	p.mu.Unlock()
	p.t.ingest(ref, desc.Digest)
	return &progressWriter{Writer: w, p: p, ref: ref, u: u}, nil
}

// Mount passes a cross-repository mount on when the wrapped pusher can;
// otherwise NotFound makes the caller upload instead.
func (p *progressPusher) Mount(ctx context.Context, desc ocispec.Descriptor, from string) error {
	mp, ok := p.Pusher.(remotes.MountPusher)
	if !ok {
		return errdefs.ErrNotFound
	}
	if err := mp.Mount(ctx, desc, from); err != nil {
		return err
	}
	p.t.exists(desc)
	return nil
}

func (p *progressPusher) done(ref string) {
	p.mu.Lock()
	delete(p.active, ref)
	p.mu.Unlock()
}

func (p *progressPusher) statuses(context.Context) ([]content.Status, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]content.Status, 0, len(p.active))
	for ref, u := range p.active {
		out = append(out, content.Status{Ref: ref, Offset: u.written.Load(), Total: u.desc.Size, StartedAt: u.started})
	}
	return out, nil
}

type progressWriter struct {
	content.Writer
	p   *progressPusher
	ref string
	u   *upload
}

func (w *progressWriter) Write(b []byte) (int, error) {
	n, err := w.Writer.Write(b)
	w.u.written.Add(int64(n))
	return n, err
}

func (w *progressWriter) Truncate(size int64) error {
	err := w.Writer.Truncate(size)
	if err == nil {
		w.u.written.Store(size)
	}
	return err
}

func (w *progressWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	err := w.Writer.Commit(ctx, size, expected, opts...)
	w.p.done(w.ref)
	switch {
	case err == nil:
		w.p.t.complete(w.u.desc)
	case errdefs.IsAlreadyExists(err):
		w.p.t.exists(w.u.desc)
	}
	return err
}
