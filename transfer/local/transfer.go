// Package local is the daemon's transferrer: it matches the source and
// destination of a transfer (a registry, the image store, an archive
// stream) to the operation that moves an image between them (pull, push,
// import, export, tag) and runs it against the daemon's own content store,
// image store, snapshotters and leases.
package local

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/transfer"
	"github.com/llitfkitfk/containerd/unpack"
)

// Config is what a Service is built with.
type Config struct {
	// Leases holds what a transfer writes until its image record does;
	// nil: no lease is taken (content may then be collected mid-pull).
	Leases leases.Manager
	// MaxConcurrentDownloads bounds the blobs fetched at once by a pull;
	// 0: no bound.
	MaxConcurrentDownloads int
	// MaxConcurrentUploadedLayers bounds the blobs pushed at once.
	MaxConcurrentUploadedLayers int
	// UnpackPlatforms are the platform and snapshotter pairs this daemon
	// can unpack into; a destination's unpack requests are matched
	// against them.
	UnpackPlatforms []unpack.Platform
	// DefaultSnapshotter is preferred when a request names no
	// snapshotter and several configured ones fit its platform.
	DefaultSnapshotter string
	// RegistryConfigPath is the directory of per-host registry
	// configuration (hosts.toml), for the registry objects to read.
	RegistryConfigPath string
}

// Service is a transfer.Transferrer over a content store and an image
// store.
type Service struct {
	content content.Store
	images  images.Store
	config  Config

	downloads *semaphore.Weighted // nil: unbounded
	uploads   *semaphore.Weighted
}

var _ transfer.Transferrer = (*Service)(nil)

// NewTransferService returns the transferrer that reads and writes cs and
// is.
func NewTransferService(cs content.Store, is images.Store, c Config) *Service {
	s := &Service{content: cs, images: is, config: c}
	if c.MaxConcurrentDownloads > 0 {
		s.downloads = semaphore.NewWeighted(int64(c.MaxConcurrentDownloads))
	}
	if c.MaxConcurrentUploadedLayers > 0 {
		s.uploads = semaphore.NewWeighted(int64(c.MaxConcurrentUploadedLayers))
	}
	return s
}

// RegistryConfigPath is the directory of hosts.toml files the registry
// objects given to this service should read.
func (s *Service) RegistryConfigPath() string { return s.config.RegistryConfigPath }

// Transfer moves src to dst. A pair it does not know is ErrNotImplemented,
// so that a caller holding several transferrers can try the next.
func (s *Service) Transfer(ctx context.Context, src, dst interface{}, opts ...transfer.Opt) error {
	var tc transfer.Config
	for _, o := range opts {
		o(&tc)
	}
	// The order of the cases matters where one object is several things:
	// a registry is both a fetcher and a pusher, the image store both a
	// getter and a storer; the source decides first, as in containerd.
	op := s.operation(src, dst)
	if op == nil {
		return fmt.Errorf("transfer from %s to %s: %w", describe(src), describe(dst), errdefs.ErrNotImplemented)
	}
	err := op(ctx, &tc)
	if errors.Is(err, errdefs.ErrNotImplemented) {
		// NotImplemented from a known pair is about the content (a
		// schema 1 manifest, say), not the pair: it must not make the
		// caller try another transferrer and lose this message.
		msg := strings.TrimSuffix(err.Error(), ": "+errdefs.ErrNotImplemented.Error())
		return fmt.Errorf("%s: %w", msg, errdefs.ErrInvalidArgument)
	}
	return err
}

// operation returns the transfer that moves src to dst, nil if none does.
func (s *Service) operation(src, dst interface{}) func(context.Context, *transfer.Config) error {
	switch src := src.(type) {
	case transfer.ImageFetcher:
		if dst, ok := dst.(transfer.ImageStorer); ok {
			return func(ctx context.Context, tc *transfer.Config) error { return s.pull(ctx, src, dst, tc) }
		}
	case transfer.ImageGetter:
		switch dst := dst.(type) {
		case transfer.ImagePusher:
			return func(ctx context.Context, tc *transfer.Config) error { return s.push(ctx, src, dst, tc) }
		case transfer.ImageExporter:
			return func(ctx context.Context, tc *transfer.Config) error { return s.export(ctx, src, dst, tc) }
		case transfer.ImageStorer:
			return func(ctx context.Context, tc *transfer.Config) error { return s.tag(ctx, src, dst, tc) }
		}
	case transfer.ImageImporter:
		if dst, ok := dst.(transfer.ImageStorer); ok {
			return func(ctx context.Context, tc *transfer.Config) error { return s.importImages(ctx, src, dst, tc) }
		}
	}
	return nil
}

// describe names a transfer object for messages: its String if it has
// one (registries print their reference), else its type.
func describe(v interface{}) string {
	if s, ok := v.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", v)
}

// leaseExpiry bounds how long a transfer's lease outlives a daemon that
// died before deleting it.
const leaseExpiry = 24 * time.Hour

// withLease puts a lease on ctx so that what the transfer writes is not
// collected before the image record refers to it. A lease already on ctx
// (the client's) is used as is and not deleted. release deletes the lease
// it made; it runs even when ctx is cancelled, since a client that went
// away must not leave a lease pinning a partial download for a day.
func (s *Service) withLease(ctx context.Context) (_ context.Context, lease leases.Lease, release func(), _ error) {
	ctx, lease, release2, err := s.withLeaseKeeping(ctx)
	return ctx, lease, func() { release2(false) }, err
}

// withLeaseKeeping is withLease whose release can keep the partial
// downloads the lease held: given true, it hands each ingest over to the
// content store's own expiry (a day), out of the lease it made or the
// client's, so that a retry after a failed pull resumes them rather than
// start again, even if the collector runs in between.
func (s *Service) withLeaseKeeping(ctx context.Context) (_ context.Context, lease leases.Lease, release func(keepIngests bool), _ error) {
	if id, ok := leases.FromContext(ctx); ok {
		// The client's lease: it deletes it when it is done, taking a
		// failed pull's partial downloads with it unless they leave it.
		l := leases.Lease{ID: id}
		return ctx, l, func(keepIngests bool) {
			if keepIngests && s.config.Leases != nil {
				s.keepIngests(leases.WithoutLease(context.WithoutCancel(ctx)), l)
			}
		}, nil
	}
	if s.config.Leases == nil {
		return ctx, leases.Lease{}, func(bool) {}, nil
	}
	l, err := s.config.Leases.Create(ctx, leases.WithExpiration(leaseExpiry), leases.WithLabels(map[string]string{
		"containerd.io/transfer": "local",
	}))
	if err != nil {
		return ctx, leases.Lease{}, nil, fmt.Errorf("create lease: %w", err)
	}
	unleased := leases.WithoutLease(context.WithoutCancel(ctx))
	return leases.WithLease(ctx, l.ID), l, func(keepIngests bool) {
		if keepIngests {
			s.keepIngests(unleased, l)
		}
		if err := s.config.Leases.Delete(unleased, l); err != nil {
			log.G(ctx).WithError(err).WithField("lease", l.ID).Warn("transfer: releasing lease")
		}
	}, nil
}

// keepIngests moves the ingests lease holds out of it. Reopened without
// a lease, an ingest is given the content store's expiry; one another
// writer has open is left to that writer's lease.
func (s *Service) keepIngests(ctx context.Context, l leases.Lease) {
	rs, err := s.config.Leases.ListResources(ctx, l)
	if err != nil {
		log.G(ctx).WithError(err).Warn("transfer: listing a failed pull's ingests")
		return
	}
	for _, r := range rs {
		if r.Type != "ingests" {
			continue
		}
		if err := s.config.Leases.DeleteResource(ctx, l, r); err != nil {
			log.G(ctx).WithError(err).WithField("ref", r.ID).Debug("transfer: keeping ingest")
			continue
		}
		w, err := s.content.Writer(ctx, content.WithRef(r.ID))
		if err != nil {
			log.G(ctx).WithError(err).WithField("ref", r.ID).Debug("transfer: keeping ingest")
			continue
		}
		w.Close()
	}
}

// hold adds an existing blob to lease, so that content found already
// present (perhaps held only by an earlier, failed transfer's lease) is
// not collected before the image record refers to it.
func (s *Service) hold(ctx context.Context, lease leases.Lease, dgst string) error {
	if s.config.Leases == nil || lease.ID == "" {
		return nil
	}
	return s.config.Leases.AddResource(ctx, lease, leases.Resource{ID: dgst, Type: "content"})
}
