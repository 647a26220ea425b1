package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/remotes"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

type pusher struct {
	*base
	host RegistryHost
	tag  string        // "" when the reference has none
	dgst digest.Digest // the reference's digest, if any
}

var _ remotes.MountPusher = (*pusher)(nil)

// manifestObject is where a manifest is PUT: under the reference's tag,
// or its digest. As containerd does, every manifest of a push goes to
// the tag; parents come after their children, so the tag ends on the
// root. A reference pinned to another digest is not tagged.
func (p *pusher) manifestObject(desc ocispec.Descriptor) string {
	if p.tag == "" || p.dgst != "" && p.dgst != desc.Digest {
		return desc.Digest.String()
	}
	return p.tag
}

// Push checks whether the registry has desc, then mounts it from
// another repository of the same registry named by its distribution
// source annotation, or returns a writer that uploads it.
func (p *pusher) Push(ctx context.Context, desc ocispec.Descriptor) (content.Writer, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("push %q: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if desc.Size < 0 {
		return nil, fmt.Errorf("push %s: negative size: %w", desc.Digest, errdefs.ErrInvalidArgument)
	}
	ctx = withScopes(ctx, repositoryScope(p.repository, true))
	isManifest := knownManifestType(desc.MediaType)
	if desc.MediaType == images.MediaTypeDockerSchema1Manifest {
		return nil, fmt.Errorf("push %s: docker schema 1 manifests are not supported: %w", desc.Digest, errdefs.ErrNotImplemented)
	}

	exists, err := p.exists(ctx, desc, isManifest)
	if err != nil {
		return nil, err
	}
	if exists {
		return nil, fmt.Errorf("%s on %s: %w", desc.Digest, p.spec.Locator, errdefs.ErrAlreadyExists)
	}

	if isManifest {
		req := p.request(p.host, http.MethodPut, "manifests", p.manifestObject(desc))
		req.header.Set("Content-Type", desc.MediaType)
		return p.upload(ctx, req, desc, http.StatusCreated), nil
	}

	var location *url.URL
	if from := p.mountSource(desc); from != "" {
		mounted, loc, err := p.mount(ctx, desc, from)
		switch {
		case mounted:
			return nil, fmt.Errorf("%s mounted from %s: %w", desc.Digest, from, errdefs.ErrAlreadyExists)
		case err != nil:
			log.G(ctx).WithError(err).WithField("digest", desc.Digest).Debug("cross-repository mount failed: uploading")
		default:
			location = loc
		}
	}
	if location == nil {
		req := p.request(p.host, http.MethodPost, "blobs", "uploads/")
		resp, err := req.do(ctx)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusAccepted {
			return nil, responseError(req.String(), resp)
		}
		discard(resp)
		if location, err = uploadLocation(resp); err != nil {
			return nil, fmt.Errorf("%s: %w", req, err)
		}
	}
	q := location.Query()
	q.Set("digest", desc.Digest.String())
	location.RawQuery = q.Encode()
	req := p.request(p.host, http.MethodPut)
	req.url = location
	req.header.Set("Content-Type", "application/octet-stream")
	return p.upload(ctx, req, desc, http.StatusCreated), nil
}

// exists asks the registry whether it has desc. A manifest is asked for
// by the tag it would be pushed to: it exists only if the tag already
// names it.
func (p *pusher) exists(ctx context.Context, desc ocispec.Descriptor, isManifest bool) (bool, error) {
	kind, object := "blobs", desc.Digest.String()
	if isManifest {
		kind, object = "manifests", p.manifestObject(desc)
	}
	req := p.request(p.host, http.MethodHead, kind, object)
	if isManifest {
		req.header.Set("Accept", desc.MediaType+", "+manifestAccept)
	}
	resp, err := req.do(ctx)
	if err != nil {
		return false, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		resp.Body.Close()
		if object != desc.Digest.String() {
			return resp.Header.Get("Docker-Content-Digest") == desc.Digest.String(), nil
		}
		return true, nil
	case http.StatusNotFound:
		resp.Body.Close()
		return false, nil
	}
	return false, responseError(req.String(), resp)
}

// mountSource picks, from desc's containerd.io/distribution.source
// annotation for this registry, a repository other than this one.
func (p *pusher) mountSource(desc ocispec.Descriptor) string {
	v := desc.Annotations[images.LabelDistributionSource+"."+p.spec.Hostname()]
	for _, repo := range strings.Split(v, ",") {
		repo = strings.TrimSpace(repo)
		if repo != "" && repo != p.repository && !strings.Contains(repo, "..") {
			return repo
		}
	}
	return ""
}

// Mount asks the registry to link desc from repository from. ErrNotFound
// means it would not: upload desc instead.
func (p *pusher) Mount(ctx context.Context, desc ocispec.Descriptor, from string) error {
	ctx = withScopes(ctx, repositoryScope(p.repository, true))
	mounted, loc, err := p.mount(ctx, desc, from)
	if err != nil {
		return err
	}
	if !mounted {
		// The registry opened an upload instead; nobody will use it.
		if loc != nil {
			req := p.request(p.host, http.MethodDelete)
			req.url = loc
			if resp, err := req.do(ctx); err == nil {
				discard(resp)
			}
		}
		return fmt.Errorf("mount %s from %s: the registry did not mount it: %w", desc.Digest, from, errdefs.ErrNotFound)
	}
	return nil
}

// mount POSTs a cross-repository mount. Not mounted but with a
// location: the registry started an upload there instead.
func (p *pusher) mount(ctx context.Context, desc ocispec.Descriptor, from string) (bool, *url.URL, error) {
	ctx = withScopes(ctx, repositoryScope(from, false))
	req := p.request(p.host, http.MethodPost, "blobs", "uploads/")
	req.url.RawQuery = url.Values{"mount": {desc.Digest.String()}, "from": {from}}.Encode()
	resp, err := req.do(ctx)
	if err != nil {
		return false, nil, err
	}
	switch resp.StatusCode {
	case http.StatusCreated:
		discard(resp)
		return true, nil, nil
	case http.StatusAccepted:
		discard(resp)
		loc, err := uploadLocation(resp)
		if err != nil {
			return false, nil, fmt.Errorf("%s: %w", req, err)
		}
		return false, loc, nil
	}
	return false, nil, responseError(req.String(), resp)
}

// uploadLocation is the absolute URL of a response's Location header,
// which may be relative to the request.
func uploadLocation(resp *http.Response) (*url.URL, error) {
	v := resp.Header.Get("Location")
	if v == "" {
		return nil, fmt.Errorf("the registry gave no upload location: %w", errdefs.ErrUnknown)
	}
	u, err := resp.Request.URL.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("bad upload location %q: %w", v, errdefs.ErrUnknown)
	}
	return u, nil
}

// upload starts req with a body fed by the returned writer.
func (p *pusher) upload(ctx context.Context, req *request, desc ocispec.Descriptor, want int) *pushWriter {
	pr, pw := io.Pipe()
	req.body = func() (io.ReadCloser, error) {
		if desc.Size == 0 {
			// A zero length with a body would be sent chunked.
			return http.NoBody, nil
		}
		return pr, nil
	}
	req.size = desc.Size
	now := time.Now()
	w := &pushWriter{
		ref:      remotes.MakeRefKey(ctx, desc),
		req:      req,
		desc:     desc,
		want:     want,
		pw:       pw,
		digester: desc.Digest.Algorithm().Digester(),
		done:     make(chan struct{}),
		started:  now,
		updated:  now,
	}
	go func() {
		resp, err := req.do(ctx)
		if err == nil {
			if resp.StatusCode != want {
				err = responseError(req.String(), resp)
			} else {
				if d := resp.Header.Get("Docker-Content-Digest"); d != "" && d != desc.Digest.String() {
					err = fmt.Errorf("%s: the registry stored %s: %w", req, d, errdefs.ErrFailedPrecondition)
				}
				discard(resp)
			}
		}
		// Whatever happened, nothing more is read from the pipe.
		pr.CloseWithError(errors.New("upload finished"))
		w.result = err
		close(w.done)
	}()
	return w
}

// pushWriter streams what is written to it into an upload request.
type pushWriter struct {
	ref      string
	req      *request
	desc     ocispec.Descriptor
	want     int
	pw       *io.PipeWriter
	digester digest.Digester

	done   chan struct{}
	result error // set before done is closed

	mu               sync.Mutex
	offset           int64
	started, updated time.Time
	closed           bool
}

// Write sends p on to the registry. Writes come from one goroutine, as
// for any content.Writer; the lock is not held while the network is
// slow, so that Status and Close still answer.
func (w *pushWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return 0, fmt.Errorf("push %s: writer closed: %w", w.desc.Digest, errdefs.ErrFailedPrecondition)
	}
	if w.offset+int64(len(p)) > w.desc.Size {
		w.abort(errors.New("more data than the descriptor's size"))
		w.mu.Unlock()
		return 0, fmt.Errorf("push %s: more than its %d bytes written: %w", w.desc.Digest, w.desc.Size, errdefs.ErrFailedPrecondition)
	}
	w.mu.Unlock()

	n, err := w.pw.Write(p)

	w.mu.Lock()
	w.digester.Hash().Write(p[:n])
	w.offset += int64(n)
	w.updated = time.Now()
	w.mu.Unlock()
	if err != nil {
		// The request ended early: its error says why.
		<-w.done
		if w.result != nil {
			return n, w.result
		}
		return n, fmt.Errorf("push %s: %w", w.desc.Digest, err)
	}
	return n, nil
}

func (w *pushWriter) abort(err error) {
	w.closed = true
	w.pw.CloseWithError(err)
}

// Commit ends the upload if what was written is desc, and waits for the
// registry's answer.
func (w *pushWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return fmt.Errorf("push %s: writer closed: %w", w.desc.Digest, errdefs.ErrFailedPrecondition)
	}
	if w.offset != w.desc.Size || size > 0 && size != w.offset {
		w.abort(errors.New("size mismatch"))
		w.mu.Unlock()
		return fmt.Errorf("push %s: %d bytes written, expected %d: %w", w.desc.Digest, w.offset, max(size, w.desc.Size), errdefs.ErrFailedPrecondition)
	}
	got := w.digester.Digest()
	if got != w.desc.Digest || expected != "" && expected != got {
		w.abort(errors.New("digest mismatch"))
		w.mu.Unlock()
		return fmt.Errorf("push %s: wrote content with digest %s: %w", w.desc.Digest, got, errdefs.ErrFailedPrecondition)
	}
	w.closed = true
	w.pw.Close()
	w.mu.Unlock()

	select {
	case <-w.done:
		return w.result
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close abandons an upload not committed.
func (w *pushWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.abort(errors.New("upload abandoned"))
	}
	return nil
}

func (w *pushWriter) Digest() digest.Digest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.digester.Digest()
}

func (w *pushWriter) Status() (content.Status, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return content.Status{
		Ref:       w.ref,
		Offset:    w.offset,
		Total:     w.desc.Size,
		Expected:  w.desc.Digest,
		StartedAt: w.started,
		UpdatedAt: w.updated,
	}, nil
}

// Truncate can only restart an upload that has not begun: what was sent
// cannot be taken back.
func (w *pushWriter) Truncate(size int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if size != 0 || w.offset != 0 {
		return fmt.Errorf("push %s: cannot truncate an upload in flight: %w", w.desc.Digest, errdefs.ErrNotImplemented)
	}
	return nil
}
