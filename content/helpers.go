package content

import (
	"context"
	"errors"
	"fmt"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/errdefs"
)

// copyBufSize matches the chunk size containerd's clients send, so a copy
// hands the writer the large writes it is fastest with.
const copyBufSize = 1 << 20

// WriteBlob writes r into the ingest named ref and commits it as desc.
// A blob that already exists is not an error. If the ingest was started
// earlier it is resumed: a seekable r is moved to the ingest's offset,
// any other r is written again from the start.
func WriteBlob(ctx context.Context, ingester Ingester, ref string, r io.Reader, desc ocispec.Descriptor, opts ...Opt) error {
	w, err := ingester.Writer(ctx, WithRef(ref), WithDescriptor(desc))
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			return nil
		}
		return fmt.Errorf("open writer for %s: %w", ref, err)
	}
	defer w.Close()

	st, err := w.Status()
	if err != nil {
		return fmt.Errorf("status of %s: %w", ref, err)
	}
	if st.Offset > 0 {
		if err := skipTo(w, r, st.Offset); err != nil {
			return fmt.Errorf("resume %s at %d: %w", ref, st.Offset, err)
		}
	}

	if err := copyTo(w, r); err != nil {
		return fmt.Errorf("copy to %s: %w", ref, err)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest, opts...); err != nil && !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("commit %s: %w", ref, err)
	}
	return nil
}

// copyTo copies r to w: through w's ReadFrom if it has one (the Content
// service's client writer, which sends several chunks before waiting for
// their answers when it reads them itself), else in large writes.
func copyTo(w Writer, r io.Reader) error {
	if rf, ok := w.(io.ReaderFrom); ok {
		_, err := rf.ReadFrom(r)
		return err
	}
	buf := make([]byte, copyBufSize)
	// io.CopyBuffer would prefer r.WriteTo, which may write in small
	// pieces; hiding it keeps the writes large.
	_, err := io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, buf)
	return err
}

// skipTo lines r up with an ingest already holding offset bytes.
func skipTo(w Writer, r io.Reader, offset int64) error {
	if s, ok := r.(io.Seeker); ok {
		_, err := s.Seek(offset, io.SeekStart)
		return err
	}
	return w.Truncate(0)
}

// ReadBlob returns the whole blob desc names.
func ReadBlob(ctx context.Context, provider Provider, desc ocispec.Descriptor) ([]byte, error) {
	ra, err := provider.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer ra.Close()

	p := make([]byte, ra.Size())
	n, err := ra.ReadAt(p, 0)
	if err != nil && !(errors.Is(err, io.EOF) && n == len(p)) {
		return nil, fmt.Errorf("read %s: %w", desc.Digest, err)
	}
	return p, nil
}

// NewReader returns a sequential reader over all of ra.
func NewReader(ra ReaderAt) io.Reader {
	return io.NewSectionReader(ra, 0, ra.Size())
}
