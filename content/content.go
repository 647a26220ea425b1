// Package content defines the content-addressable store: blobs named by
// their digest, written through resumable ingests named by a ref.
//
// The local filesystem store is content/local; the metadata package wraps a
// store in a per-namespace view.
package content

import (
	"context"
	"io"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ReaderAt reads a committed blob.
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// Provider opens committed blobs.
type Provider interface {
	// ReaderAt opens the blob desc names; only desc.Digest is required,
	// desc.Size lets a store skip a stat.
	ReaderAt(ctx context.Context, desc ocispec.Descriptor) (ReaderAt, error)
}

// Ingester starts or resumes writes.
type Ingester interface {
	// Writer opens the ingest named by the WithRef option, resuming it at
	// its current offset if it exists. A ref held by another writer is
	// Unavailable ("ref locked").
	Writer(ctx context.Context, opts ...WriterOpt) (Writer, error)
}

// Info describes a committed blob.
type Info struct {
	Digest    digest.Digest
	Size      int64
	CreatedAt time.Time
	UpdatedAt time.Time
	Labels    map[string]string
}

// Status describes an ingest in progress.
type Status struct {
	Ref       string
	Offset    int64
	Total     int64
	Expected  digest.Digest
	StartedAt time.Time
	UpdatedAt time.Time
}

// WalkFunc is called for each blob Walk visits.
type WalkFunc func(Info) error

// InfoProvider describes committed blobs.
type InfoProvider interface {
	// Info returns the blob's info, NotFound if it is absent.
	Info(ctx context.Context, dgst digest.Digest) (Info, error)
}

// Manager queries and changes committed blobs.
type Manager interface {
	InfoProvider
	// Update changes the blob's mutable fields: labels. With no field
	// paths all labels are replaced; "labels.<key>" sets (or, if empty,
	// removes) one label; "labels" replaces them all.
	Update(ctx context.Context, info Info, fieldpaths ...string) (Info, error)
	// Walk calls fn for each blob matching any of the filters.
	Walk(ctx context.Context, fn WalkFunc, filters ...string) error
	// Delete removes the blob; NotFound if it is absent.
	Delete(ctx context.Context, dgst digest.Digest) error
}

// IngestManager queries and cancels ingests.
type IngestManager interface {
	Status(ctx context.Context, ref string) (Status, error)
	ListStatuses(ctx context.Context, filters ...string) ([]Status, error)
	Abort(ctx context.Context, ref string) error
}

// Writer writes one ingest. Its data is not visible as a blob until Commit
// succeeds; a writer that is closed without committing can be resumed.
type Writer interface {
	io.WriteCloser
	// Digest is the digest of what has been written so far.
	Digest() digest.Digest
	// Commit makes the written data a blob, checking it against size and
	// expected when they are set (a mismatch is FailedPrecondition and
	// nothing is committed). Committing a blob that already exists is
	// AlreadyExists.
	Commit(ctx context.Context, size int64, expected digest.Digest, opts ...Opt) error
	Status() (Status, error)
	// Truncate discards what was written after size; only 0 need be
	// supported.
	Truncate(size int64) error
}

// WriteBehindHeader is the gRPC metadata key with which a client of the
// Content service's Write stream asks for write-behind: the daemon then
// answers a WRITE once it has taken the chunk, before hashing and writing
// it, and the answer carries no digest (STAT and COMMIT answers still
// do). Without it each WRITE is answered once written, with the digest of
// everything written, as by containerd, whose clients' Digest is the last
// one answered. Daemons that do not know the key ignore it.
const WriteBehindHeader = "containerd-content-write-behind"

// ReceivedWriter is a Writer that can be told when the data it is given
// was received. A caller that acknowledges data before the store has it,
// as the Content service's write-behind does, passes the time of the
// acknowledgement, so that the ingest's update time is one its client saw
// go by: containerd's clients check that it falls within their write.
type ReceivedWriter interface {
	WriteReceived(p []byte, received time.Time) (int, error)
}

// WriteReceived writes p to w, as received at that time where w can be
// told so.
func WriteReceived(w Writer, p []byte, received time.Time) (int, error) {
	if rw, ok := w.(ReceivedWriter); ok {
		return rw.WriteReceived(p, received)
	}
	return w.Write(p)
}

// VectorWriter is a Writer that takes data in pieces, as received: the
// Content service hands it the buffers gRPC read a message's frames into,
// so that the data reaches the file with no copy on the way.
type VectorWriter interface {
	// WriteVector appends the pieces in order, as data received at that
	// time (see ReceivedWriter); it returns how many bytes it appended.
	WriteVector(pieces [][]byte, received time.Time) (int64, error)
}

// WriteVector writes pieces to w, in one call where w takes them so,
// else one by one.
func WriteVector(w Writer, pieces [][]byte, received time.Time) (int64, error) {
	if vw, ok := w.(VectorWriter); ok {
		return vw.WriteVector(pieces, received)
	}
	var n int64
	for _, p := range pieces {
		m, err := WriteReceived(w, p, received)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Store is the whole content store.
type Store interface {
	Manager
	Provider
	IngestManager
	Ingester
}

// Opt changes the info a blob is committed with.
type Opt func(*Info) error

// WithLabels sets the labels a blob is committed with.
func WithLabels(labels map[string]string) Opt {
	return func(info *Info) error {
		info.Labels = labels
		return nil
	}
}

// WriterOpts are the options of Ingester.Writer.
type WriterOpts struct {
	Ref  string
	Desc ocispec.Descriptor
}

// WriterOpt sets a WriterOpts field.
type WriterOpt func(*WriterOpts) error

// WithRef names the ingest; it is required.
func WithRef(ref string) WriterOpt {
	return func(o *WriterOpts) error {
		o.Ref = ref
		return nil
	}
}

// WithDescriptor gives the expected size and digest up front, so that a
// store can refuse early and report the total in Status.
func WithDescriptor(desc ocispec.Descriptor) WriterOpt {
	return func(o *WriterOpts) error {
		o.Desc = desc
		return nil
	}
}
