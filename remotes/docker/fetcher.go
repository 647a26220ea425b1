package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/remotes"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxFetchRetries is how many times in a row a dropped download is
// reopened without getting a byte further.
const maxFetchRetries = 3

// seekReadThrough is how far ahead a Seek reads on through the open body
// rather than making a new request.
const seekReadThrough = 1 << 20

var _ remotes.FetcherByDigest = (*fetcher)(nil)

type fetcher struct {
	*base
}

// Fetch returns a reader of desc from the first host allowed to pull that
// has it. Nothing is requested until the first Read, so that a caller
// resuming an ingest Seeks first and the one request is ranged. The
// reader yields at most desc.Size bytes, can Seek (reopening with a Range
// request), and reopens itself from where it got to when the connection
// drops.
func (f *fetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("fetch %q: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if desc.Size < 0 {
		return nil, fmt.Errorf("fetch %s: negative size %d: %w", desc.Digest, desc.Size, errdefs.ErrInvalidArgument)
	}
	return f.reader(ctx, desc)
}

// reader returns an unopened reader of desc (Size -1: of any size).
func (f *fetcher) reader(ctx context.Context, desc ocispec.Descriptor) (*blobReader, error) {
	hosts := f.filterHosts(HostCapabilityPull)
	if len(hosts) == 0 {
		return nil, f.noHosts("pull")
	}
	// Manifests live under /manifests; some registries also serve them
	// as blobs, which is where a manifest pushed as a blob would be.
	kinds := []string{"blobs"}
	if knownManifestType(desc.MediaType) {
		kinds = []string{"manifests", "blobs"}
	}
	return &blobReader{
		ctx:   withScopes(ctx, repositoryScope(f.repository, false)),
		base:  f.base,
		hosts: hosts,
		kinds: kinds,
		desc:  desc,
	}, nil
}

// FetchByDigest opens the blob with desc's digest, learning its size
// (and, if desc has none, its media type) from the registry. A manifest
// media type in desc makes it look under /manifests first.
func (f *fetcher) FetchByDigest(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, ocispec.Descriptor, error) {
	desc = ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: -1}
	if err := desc.Digest.Validate(); err != nil {
		return nil, ocispec.Descriptor{}, fmt.Errorf("fetch %q: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	r, err := f.reader(ctx, desc)
	if err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	if err := r.open(); err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	return r, r.desc, nil
}

// blobReader reads one blob, reopening the request at its offset when
// asked to seek or when the connection drops.
type blobReader struct {
	ctx   context.Context
	base  *base
	hosts []RegistryHost // to try, in order, until one has it
	kinds []string       // "blobs" or "manifests", in order
	found bool           // host and kind are the ones that have it
	host  RegistryHost
	kind  string
	desc  ocispec.Descriptor

	body io.ReadCloser // nil: open at offset on the next Read
	// streaming: bytes of body have been read. A short skip forward is
	// then read through; before that, as when resuming an ingest, the
	// request is made again with a Range, so no byte comes twice.
	streaming bool
	offset    int64
	retries   int // reopenings since the last byte
	err       error
}

// open GETs the blob from r.offset on, from the host that had it, or the
// first of the hosts that has it.
func (r *blobReader) open() error {
	if r.found {
		return r.openAt()
	}
	var firstErr error
	for _, host := range r.hosts {
		for _, kind := range r.kinds {
			r.host, r.kind = host, kind
			err := r.openAt()
			if err == nil {
				r.found = true
				return nil
			}
			if r.ctx.Err() != nil {
				return err
			}
			if firstErr == nil || errdefs.IsNotFound(firstErr) && !errdefs.IsNotFound(err) {
				firstErr = err
			}
			if !errdefs.IsNotFound(err) {
				break // this host is failing: try the next
			}
		}
	}
	return fmt.Errorf("fetch %s %s from %s: %w", r.desc.MediaType, r.desc.Digest, r.base.spec.Locator, firstErr)
}

// openAt GETs the blob from r.offset on at r.host. A registry that
// ignores the Range header sends it all: the bytes before offset are read
// and dropped.
func (r *blobReader) openAt() error {
	req := r.base.request(r.host, http.MethodGet, r.kind, r.desc.Digest.String())
	if r.kind == "manifests" {
		accept := manifestAccept
		if r.desc.MediaType != "" {
			accept = r.desc.MediaType + ", " + accept
		}
		req.header.Set("Accept", accept)
	}
	if r.offset > 0 {
		req.header.Set("Range", "bytes="+strconv.FormatInt(r.offset, 10)+"-")
	}
	resp, err := req.do(r.ctx)
	if err != nil {
		return err
	}
	var start int64
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusPartialContent:
		start = r.offset
		if s, ok := parseContentRange(resp.Header.Get("Content-Range")); ok {
			start = s
		}
		if start > r.offset {
			resp.Body.Close()
			return fmt.Errorf("%s: asked for bytes from %d, got from %d: %w", req, r.offset, start, errdefs.ErrUnavailable)
		}
	default:
		return responseError(req.String(), resp)
	}
	// A body that ends cleanly short is the registry's word on the size,
	// not a broken connection to resume: refuse it, naming both sizes.
	if r.desc.Size >= 0 && resp.ContentLength >= 0 && start+resp.ContentLength < r.desc.Size {
		resp.Body.Close()
		return fmt.Errorf("%s: the registry serves %d bytes of %s from offset %d, its descriptor says the size is %d: %w",
			req, resp.ContentLength, r.desc.Digest, start, r.desc.Size, errdefs.ErrFailedPrecondition)
	}
	if r.desc.Size < 0 {
		// Fetched by digest alone: the first answer tells the size.
		if resp.StatusCode != http.StatusOK || resp.ContentLength < 0 {
			resp.Body.Close()
			return fmt.Errorf("%s: the registry did not say how big %s is: %w", req, r.desc.Digest, errdefs.ErrUnavailable)
		}
		r.desc.Size = resp.ContentLength
		if mt := contentType(resp.Header); mt != "" && r.desc.MediaType == "" {
			r.desc.MediaType = mt
		}
	}
	if skip := r.offset - start; skip > 0 {
		if _, err := io.CopyN(io.Discard, resp.Body, skip); err != nil {
			resp.Body.Close()
			return fmt.Errorf("%s: skip to %d: %w: %w", req, r.offset, err, errdefs.ErrUnavailable)
		}
	}
	r.body = resp.Body
	r.streaming = false
	return nil
}

func (r *blobReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.offset >= r.desc.Size {
		return 0, io.EOF
	}
	if rest := r.desc.Size - r.offset; int64(len(p)) > rest {
		p = p[:rest]
	}
	for {
		if r.body == nil {
			if err := r.open(); err != nil {
				// A registry or network having a bad moment may be
				// retried; any other answer is final.
				if !errdefs.IsUnavailable(err) || r.retries >= maxFetchRetries || !r.pause() {
					r.err = err
					return 0, err
				}
				r.retries++
				continue
			}
		}
		n, err := r.body.Read(p)
		r.offset += int64(n)
		if n > 0 {
			r.retries = 0
			r.streaming = true
		}
		if err == nil || r.offset == r.desc.Size {
			return n, nil
		}
		// The body ended or broke before desc.Size bytes: reopen from
		// here, unless this has stopped making progress.
		r.body.Close()
		r.body = nil
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		if r.ctx.Err() != nil || r.retries >= maxFetchRetries {
			r.err = fmt.Errorf("fetch %s: %d of %d bytes, then: %w", r.desc.Digest, r.offset, r.desc.Size, err)
			return n, r.err
		}
		r.retries++
		log.G(r.ctx).WithError(err).WithField("digest", r.desc.Digest).WithField("offset", r.offset).Debug("download interrupted: resuming")
		if n > 0 {
			return n, nil
		}
	}
}

// pause waits a little longer after each failed attempt; false if the
// context ended first.
func (r *blobReader) pause() bool {
	t := time.NewTimer(time.Duration(r.retries+1) * 100 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.ctx.Done():
		return false
	}
}

// Seek moves to a new offset; the next Read reopens the request there.
func (r *blobReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.offset
	case io.SeekEnd:
		offset += r.desc.Size
	case io.SeekStart:
	default:
		return r.offset, fmt.Errorf("seek: bad whence %d: %w", whence, errdefs.ErrInvalidArgument)
	}
	if offset < 0 || offset > r.desc.Size {
		return r.offset, fmt.Errorf("seek to %d of a %d byte blob: %w", offset, r.desc.Size, errdefs.ErrInvalidArgument)
	}
	if offset == r.offset {
		return r.offset, nil
	}
	r.err = nil
	r.retries = 0
	if r.body != nil && r.streaming && offset > r.offset && offset-r.offset <= seekReadThrough {
		// Close ahead: reading on costs less than a new request.
		n, err := io.CopyN(io.Discard, r.body, offset-r.offset)
		r.offset += n
		if err == nil {
			return r.offset, nil
		}
	}
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
	r.offset = offset
	return r.offset, nil
}

func (r *blobReader) Close() error {
	r.err = errors.New("reader closed")
	if r.body != nil {
		err := r.body.Close()
		r.body = nil
		return err
	}
	return nil
}
