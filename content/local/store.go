// Package local is the content store on the local filesystem: committed
// blobs live at <root>/blobs/<alg>/<hex>, ingests in progress under
// <root>/ingest/<sha256 of ref>/, the same layout as containerd's.
//
// A blob appears only by renaming a complete, synced ingest into place, so
// a crash at any point leaves either no blob or a whole one; the ingest it
// was written through can be resumed after a restart.
package local

import (
	"context"
	_ "crypto/sha256" // register the digest algorithms with crypto
	_ "crypto/sha512"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/filters"
	"github.com/llitfkitfk/containerd/log"
)

// LabelStore keeps the labels of blobs for a store used on its own. Under
// the metadata layer none is needed: it keeps labels per namespace.
type LabelStore interface {
	// Get returns the blob's labels, nil if it has none.
	Get(digest.Digest) (map[string]string, error)
	// Set replaces all of the blob's labels.
	Set(digest.Digest, map[string]string) error
	// Update sets the given labels, removing those set to "", and returns
	// the blob's labels afterwards.
	Update(digest.Digest, map[string]string) (map[string]string, error)
}

type store struct {
	root string
	ls   LabelStore

	mu    sync.Mutex
	locks map[string]time.Time // refs with an open writer, and since when
}

// NewStore returns the store at root, creating it if need be. Blobs have
// no labels: Update is refused and commit labels are dropped.
func NewStore(root string) (content.Store, error) {
	return NewLabeledStore(root, nil)
}

// NewLabeledStore is NewStore keeping labels in ls, for standalone use.
func NewLabeledStore(root string, ls LabelStore) (content.Store, error) {
	for _, dir := range []string{
		filepath.Join(root, "blobs", string(digest.Canonical)),
		filepath.Join(root, "ingest"),
	} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create content store: %w", err)
		}
	}
	s := &store{root: root, ls: ls, locks: map[string]time.Time{}}
	s.removeAborted()
	return s, nil
}

func (s *store) blobPath(dgst digest.Digest) (string, error) {
	if err := dgst.Validate(); err != nil {
		return "", fmt.Errorf("digest %q: %v: %w", dgst, err, errdefs.ErrInvalidArgument)
	}
	return filepath.Join(s.root, "blobs", dgst.Algorithm().String(), dgst.Encoded()), nil
}

func (s *store) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	p, err := s.blobPath(dgst)
	if err != nil {
		return content.Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return content.Info{}, notFound(dgst, err)
	}
	return s.info(dgst, fi)
}

func (s *store) info(dgst digest.Digest, fi fs.FileInfo) (content.Info, error) {
	info := content.Info{
		Digest:    dgst,
		Size:      fi.Size(),
		CreatedAt: fi.ModTime(),
		UpdatedAt: fi.ModTime(),
	}
	if s.ls != nil {
		// Update records its time as the atime, as containerd does; only
		// with labels is there anything to update, and without them reads
		// would make the atime noise.
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			info.UpdatedAt = time.Unix(st.Atim.Unix())
		}
		labels, err := s.ls.Get(dgst)
		if err != nil {
			return content.Info{}, fmt.Errorf("labels of %s: %w", dgst, err)
		}
		info.Labels = labels
	}
	return info, nil
}

func (s *store) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	p, err := s.blobPath(info.Digest)
	if err != nil {
		return content.Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return content.Info{}, notFound(info.Digest, err)
	}
	if s.ls == nil {
		return content.Info{}, fmt.Errorf("update %s: labels not kept by this store: %w", info.Digest, errdefs.ErrFailedPrecondition)
	}

	all := len(fieldpaths) == 0
	some := map[string]string{}
	for _, path := range fieldpaths {
		switch {
		case path == "labels":
			all = true
		case strings.HasPrefix(path, "labels."):
			key := strings.TrimPrefix(path, "labels.")
			some[key] = info.Labels[key]
		default:
			return content.Info{}, fmt.Errorf("cannot update field %q of content %s: %w", path, info.Digest, errdefs.ErrInvalidArgument)
		}
	}
	if all {
		err = s.ls.Set(info.Digest, info.Labels)
	} else {
		_, err = s.ls.Update(info.Digest, some)
	}
	if err != nil {
		return content.Info{}, fmt.Errorf("update labels of %s: %w", info.Digest, err)
	}

	now := time.Now()
	if err := os.Chtimes(p, now, fi.ModTime()); err != nil {
		log.G(ctx).WithError(err).WithField("digest", info.Digest).Warn("record update time")
	}
	if fi, err = os.Stat(p); err != nil {
		return content.Info{}, notFound(info.Digest, err)
	}
	return s.info(info.Digest, fi)
}

func (s *store) Walk(ctx context.Context, fn content.WalkFunc, fs ...string) error {
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return err
	}
	blobs := filepath.Join(s.root, "blobs")
	algs, err := os.ReadDir(blobs)
	if err != nil {
		return fmt.Errorf("walk content: %w", err)
	}
	for _, a := range algs {
		alg := digest.Algorithm(a.Name())
		if !a.IsDir() || !alg.Available() {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(blobs, a.Name()))
		if err != nil {
			return fmt.Errorf("walk content: %w", err)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			dgst := digest.NewDigestFromEncoded(alg, e.Name())
			if err := dgst.Validate(); err != nil {
				log.G(ctx).WithField("path", filepath.Join(blobs, a.Name(), e.Name())).Warn("not a blob, skipped")
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue // deleted since the listing
			}
			info, err := s.info(dgst, fi)
			if err != nil {
				return err
			}
			if !filter.Match(content.AdaptInfo(info)) {
				continue
			}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *store) Delete(ctx context.Context, dgst digest.Digest) error {
	p, err := s.blobPath(dgst)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return notFound(dgst, err)
	}
	return nil
}

func (s *store) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	p, err := s.blobPath(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, notFound(desc.Digest, err)
	}
	// Stat rather than trust desc.Size, which comes from the client.
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat content %s: %w", desc.Digest, err)
	}
	return &readerAt{f: f, size: fi.Size()}, nil
}

// notFound turns a missing blob into NotFound and leaves other errors be.
func notFound(dgst digest.Digest, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("content %s: %w", dgst, errdefs.ErrNotFound)
	}
	return fmt.Errorf("content %s: %w", dgst, err)
}

type readerAt struct {
	f    *os.File
	size int64
}

func (r *readerAt) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }
func (r *readerAt) Size() int64                             { return r.size }
func (r *readerAt) Close() error                            { return r.f.Close() }
