package content

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"sort"
	"strings"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/namespaces"
)

// fakeStore is an in-memory content.Store, namespaced like the metadata
// store: every call needs a namespace and sees only that namespace.
type fakeStore struct {
	mu      sync.Mutex
	blobs   map[string]map[digest.Digest]*fakeBlob
	ingests map[string]map[string]*fakeIngest
	// discard keeps only the hash of ingested data (for benchmarks).
	discard bool
	// failAfter, if > 0, makes writes fail once an ingest would pass it.
	failAfter int64
	// delay, if > 0, is how long each write takes without using the CPU,
	// standing in for hashing on a core of its own.
	delay time.Duration
	// writers counts open writers.
	writers int
}

type fakeBlob struct {
	data []byte
	info content.Info
}

type fakeIngest struct {
	data    []byte
	size    int64
	locked  bool
	status  content.Status
	discard bool
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		blobs:   map[string]map[digest.Digest]*fakeBlob{},
		ingests: map[string]map[string]*fakeIngest{},
	}
}

func (s *fakeStore) ns(ctx context.Context) (string, error) {
	return namespaces.NamespaceRequired(ctx)
}

// put commits data directly, for tests that need blobs to exist.
func (s *fakeStore) put(ns string, data []byte, labels map[string]string) digest.Digest {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := digest.FromBytes(data)
	if s.blobs[ns] == nil {
		s.blobs[ns] = map[digest.Digest]*fakeBlob{}
	}
	now := time.Now()
	s.blobs[ns][d] = &fakeBlob{data: data, info: content.Info{Digest: d, Size: int64(len(data)), CreatedAt: now, UpdatedAt: now, Labels: labels}}
	return d
}

func (s *fakeStore) blob(ns string, d digest.Digest) (*fakeBlob, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[ns][d]
	return b, ok
}

func (s *fakeStore) openWriters() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writers
}

func (s *fakeStore) Info(ctx context.Context, d digest.Digest) (content.Info, error) {
	ns, err := s.ns(ctx)
	if err != nil {
		return content.Info{}, err
	}
	b, ok := s.blob(ns, d)
	if !ok {
		return content.Info{}, fmt.Errorf("content %v: %w", d, errdefs.ErrNotFound)
	}
	return b.info, nil
}

func (s *fakeStore) Update(ctx context.Context, info content.Info, paths ...string) (content.Info, error) {
	ns, err := s.ns(ctx)
	if err != nil {
		return content.Info{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[ns][info.Digest]
	if !ok {
		return content.Info{}, fmt.Errorf("content %v: %w", info.Digest, errdefs.ErrNotFound)
	}
	labels := map[string]string{}
	for k, v := range b.info.Labels {
		labels[k] = v
	}
	if len(paths) == 0 {
		paths = []string{"labels"}
	}
	for _, p := range paths {
		switch {
		case p == "labels":
			labels = map[string]string{}
			for k, v := range info.Labels {
				labels[k] = v
			}
		case strings.HasPrefix(p, "labels."):
			k := strings.TrimPrefix(p, "labels.")
			if v := info.Labels[k]; v != "" {
				labels[k] = v
			} else {
				delete(labels, k)
			}
		default:
			return content.Info{}, fmt.Errorf("cannot update %q: %w", p, errdefs.ErrInvalidArgument)
		}
	}
	b.info.Labels = labels
	b.info.UpdatedAt = time.Now()
	return b.info, nil
}

func (s *fakeStore) Walk(ctx context.Context, fn content.WalkFunc, filters ...string) error {
	ns, err := s.ns(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	var infos []content.Info
	for _, b := range s.blobs[ns] {
		infos = append(infos, b.info)
	}
	s.mu.Unlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Digest < infos[j].Digest })
	for _, info := range infos {
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeStore) Delete(ctx context.Context, d digest.Digest) error {
	ns, err := s.ns(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blobs[ns][d]; !ok {
		return fmt.Errorf("content %v: %w", d, errdefs.ErrNotFound)
	}
	delete(s.blobs[ns], d)
	return nil
}

type fakeReaderAt struct{ *bytes.Reader }

func (fakeReaderAt) Close() error { return nil }

func (s *fakeStore) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	ns, err := s.ns(ctx)
	if err != nil {
		return nil, err
	}
	b, ok := s.blob(ns, desc.Digest)
	if !ok {
		return nil, fmt.Errorf("content %v: %w", desc.Digest, errdefs.ErrNotFound)
	}
	return fakeReaderAt{bytes.NewReader(b.data)}, nil
}

func (s *fakeStore) Status(ctx context.Context, ref string) (content.Status, error) {
	ns, err := s.ns(ctx)
	if err != nil {
		return content.Status{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.ingests[ns][ref]
	if !ok {
		return content.Status{}, fmt.Errorf("ingest %q: %w", ref, errdefs.ErrNotFound)
	}
	st := in.status
	st.Offset = in.size
	return st, nil
}

func (s *fakeStore) ListStatuses(ctx context.Context, filters ...string) ([]content.Status, error) {
	ns, err := s.ns(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []content.Status
	for _, in := range s.ingests[ns] {
		st := in.status
		st.Offset = in.size
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, nil
}

func (s *fakeStore) Abort(ctx context.Context, ref string) error {
	ns, err := s.ns(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.ingests[ns][ref]
	if !ok {
		return fmt.Errorf("ingest %q: %w", ref, errdefs.ErrNotFound)
	}
	if in.locked {
		return fmt.Errorf("ref %q locked: %w", ref, errdefs.ErrUnavailable)
	}
	delete(s.ingests[ns], ref)
	return nil
}

func (s *fakeStore) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	ns, err := s.ns(ctx)
	if err != nil {
		return nil, err
	}
	var wo content.WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return nil, err
		}
	}
	if wo.Ref == "" {
		return nil, fmt.Errorf("ref is required: %w", errdefs.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if wo.Desc.Digest != "" {
		if _, ok := s.blobs[ns][wo.Desc.Digest]; ok {
			return nil, fmt.Errorf("content %v: %w", wo.Desc.Digest, errdefs.ErrAlreadyExists)
		}
	}
	if s.ingests[ns] == nil {
		s.ingests[ns] = map[string]*fakeIngest{}
	}
	in, ok := s.ingests[ns][wo.Ref]
	if !ok {
		now := time.Now()
		in = &fakeIngest{discard: s.discard, status: content.Status{Ref: wo.Ref, StartedAt: now, UpdatedAt: now}}
		s.ingests[ns][wo.Ref] = in
	}
	if in.locked {
		return nil, fmt.Errorf("ref %q locked: %w", wo.Ref, errdefs.ErrUnavailable)
	}
	in.locked = true
	if wo.Desc.Size > 0 {
		in.status.Total = wo.Desc.Size
	}
	if wo.Desc.Digest != "" {
		in.status.Expected = wo.Desc.Digest
	}
	s.writers++
	h := sha256.New()
	h.Write(in.data)
	return &fakeWriter{s: s, ns: ns, ref: wo.Ref, in: in, h: h}, nil
}

type fakeWriter struct {
	s      *fakeStore
	ns     string
	ref    string
	in     *fakeIngest
	h      hash.Hash
	closed bool
}

func (w *fakeWriter) Write(p []byte) (int, error) {
	return w.WriteReceived(p, time.Time{})
}

// WriteReceived hashes p outside the store's lock, as a real store would,
// so that benchmarks measure hashing and not lock traffic. As the local
// store, it takes the time the data was received, if given, as its update
// time.
func (w *fakeWriter) WriteReceived(p []byte, received time.Time) (int, error) {
	if w.closed {
		return 0, errors.New("write to closed writer")
	}
	w.s.mu.Lock()
	full := w.s.failAfter > 0 && w.in.size+int64(len(p)) > w.s.failAfter
	w.s.mu.Unlock()
	if full {
		return 0, errors.New("disk full")
	}
	if w.s.delay > 0 {
		time.Sleep(w.s.delay)
	} else {
		w.h.Write(p)
	}
	if !w.in.discard {
		w.s.mu.Lock()
		w.in.data = append(w.in.data, p...)
		w.s.mu.Unlock()
	}
	if received.IsZero() {
		received = time.Now()
	}
	w.s.mu.Lock()
	w.in.size += int64(len(p))
	w.in.status.UpdatedAt = received
	w.s.mu.Unlock()
	return len(p), nil
}

func (w *fakeWriter) Digest() digest.Digest { return digest.NewDigest(digest.SHA256, w.h) }

func (w *fakeWriter) Status() (content.Status, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	st := w.in.status
	st.Offset = w.in.size
	return st, nil
}

func (w *fakeWriter) Truncate(size int64) error {
	if size != 0 {
		return fmt.Errorf("truncate to %d: %w", size, errdefs.ErrNotImplemented)
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.in.data, w.in.size = nil, 0
	w.h.Reset()
	return nil
}

func (w *fakeWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	if w.closed {
		return errors.New("commit of closed writer")
	}
	var base content.Info
	for _, o := range opts {
		if err := o(&base); err != nil {
			return err
		}
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if size > 0 && size != w.in.size {
		return fmt.Errorf("unexpected commit size %d, expected %d: %w", w.in.size, size, errdefs.ErrFailedPrecondition)
	}
	d := digest.NewDigest(digest.SHA256, w.h)
	if expected != "" && expected != d {
		return fmt.Errorf("unexpected commit digest %s, expected %s: %w", d, expected, errdefs.ErrFailedPrecondition)
	}
	delete(w.s.ingests[w.ns], w.ref)
	w.in.locked = false
	w.closed = true
	w.s.writers--
	if w.in.discard {
		return nil
	}
	if _, ok := w.s.blobs[w.ns][d]; ok {
		return fmt.Errorf("content %v: %w", d, errdefs.ErrAlreadyExists)
	}
	if w.s.blobs[w.ns] == nil {
		w.s.blobs[w.ns] = map[digest.Digest]*fakeBlob{}
	}
	now := time.Now()
	w.s.blobs[w.ns][d] = &fakeBlob{data: w.in.data, info: content.Info{Digest: d, Size: w.in.size, CreatedAt: now, UpdatedAt: now, Labels: base.Labels}}
	return nil
}

func (w *fakeWriter) Close() error {
	if w.closed {
		return nil
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.closed = true
	w.in.locked = false
	w.s.writers--
	return nil
}
