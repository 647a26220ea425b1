package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/filters"
	"github.com/llitfkitfk/containerd/log"
)

// The files of an ingest directory. ref is written last when an ingest is
// created, so an ingest without it never started and is started afresh.
const (
	refFile     = "ref"
	dataFile    = "data"
	startedFile = "startedat"
	updatedFile = "updatedat"
	totalFile   = "total"
)

// abortedMark names ingest directories being removed by Abort.
const abortedMark = ".aborted-"

// ingestDir is where the ingest of ref lives. Refs come from clients and
// may hold "/", ".." or NUL, so the directory is named by their hash and
// the ref itself is kept in the ref file.
func (s *store) ingestDir(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return filepath.Join(s.root, "ingest", hex.EncodeToString(sum[:]))
}

func isIngestName(name string) bool {
	if len(name) != 2*sha256.Size {
		return false
	}
	for _, c := range name {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (s *store) Status(ctx context.Context, ref string) (content.Status, error) {
	st, err := readStatus(s.ingestDir(ref))
	if err != nil {
		return content.Status{}, ingestErr(ref, err)
	}
	if st.Ref != ref {
		return content.Status{}, fmt.Errorf("ingest %q: directory holds ref %q: %w", ref, st.Ref, errdefs.ErrNotFound)
	}
	return st, nil
}

func (s *store) ListStatuses(ctx context.Context, fs ...string) ([]content.Status, error) {
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(s.root, "ingest"))
	if err != nil {
		return nil, fmt.Errorf("list ingests: %w", err)
	}
	var out []content.Status
	for _, e := range entries {
		if !isIngestName(e.Name()) {
			continue
		}
		st, err := readStatus(filepath.Join(s.root, "ingest", e.Name()))
		if err != nil {
			// Committed or aborted since the listing, or never started.
			continue
		}
		if filter.Match(adaptStatus(st)) {
			out = append(out, st)
		}
	}
	return out, nil
}

func adaptStatus(st content.Status) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 1 && fieldpath[0] == "ref" {
			return st.Ref, true
		}
		return "", false
	})
}

// Abort removes the ingest, even one a writer holds: that writer's Commit
// then fails. The directory is renamed away first so that the ingest
// vanishes at once rather than file by file.
func (s *store) Abort(ctx context.Context, ref string) error {
	dir := s.ingestDir(ref)
	gone := dir + abortedMark + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := os.Rename(dir, gone); err != nil {
		return ingestErr(ref, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		// The ingest is gone already; NewStore retries the removal.
		log.G(ctx).WithError(err).WithField("ref", ref).Warn("remove aborted ingest")
	}
	return nil
}

// removeAborted clears what Aborts interrupted by a crash left behind.
func (s *store) removeAborted() {
	dir := filepath.Join(s.root, "ingest")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), abortedMark) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// readStatus reads an ingest directory. Only ref and data are required;
// the timestamps and total are informational and read leniently.
func readStatus(dir string) (content.Status, error) {
	ref, err := os.ReadFile(filepath.Join(dir, refFile))
	if err != nil {
		return content.Status{}, err
	}
	fi, err := os.Stat(filepath.Join(dir, dataFile))
	if err != nil {
		return content.Status{}, err
	}
	st := content.Status{
		Ref:       string(ref),
		Offset:    fi.Size(),
		Total:     readTotal(dir),
		StartedAt: readTime(filepath.Join(dir, startedFile)),
		UpdatedAt: lastWrite(dir, fi),
	}
	return st, nil
}

// lastWrite is when the ingest in dir was last written to, given its data
// file's info. updatedat holds the writer's own update time, which may be
// earlier than the data's mtime (it is when the data was received), but it
// is written only on Close: it holds while it was written after the data
// last changed. After a kill the data's mtime is the later one, and the
// best there is.
func lastWrite(dir string, data fs.FileInfo) time.Time {
	path := filepath.Join(dir, updatedFile)
	if fi, err := os.Stat(path); err == nil && !data.ModTime().After(fi.ModTime()) {
		if t := readTime(path); !t.IsZero() {
			return t
		}
	}
	return data.ModTime()
}

func readTotal(dir string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, totalFile))
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

func readTime(path string) time.Time {
	var t time.Time
	if b, err := os.ReadFile(path); err == nil {
		t.UnmarshalText(b) // a torn file leaves t zero, which is fine
	}
	return t
}

func writeTime(path string, t time.Time) error {
	b, err := t.MarshalText()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// ingestErr turns a missing ingest into NotFound.
func ingestErr(ref string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ingest %q: %w", ref, errdefs.ErrNotFound)
	}
	return fmt.Errorf("ingest %q: %w", ref, err)
}

func (s *store) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, opt := range opts {
		if err := opt(&wo); err != nil {
			return nil, err
		}
	}
	if wo.Ref == "" {
		return nil, fmt.Errorf("writer: ref must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	if wo.Desc.Size < 0 {
		return nil, fmt.Errorf("writer %q: negative size %d: %w", wo.Ref, wo.Desc.Size, errdefs.ErrInvalidArgument)
	}
	alg := digest.Canonical
	if wo.Desc.Digest != "" {
		p, err := s.blobPath(wo.Desc.Digest)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("content %s: %w", wo.Desc.Digest, errdefs.ErrAlreadyExists)
		}
		alg = wo.Desc.Digest.Algorithm() // available: blobPath validated it
	}

	if err := s.tryLock(wo.Ref); err != nil {
		return nil, err
	}
	w, err := s.resume(wo.Ref, wo.Desc, alg)
	if errors.Is(err, errRestart) || errors.Is(err, fs.ErrNotExist) {
		if errors.Is(err, errRestart) {
			log.G(ctx).WithError(err).WithField("ref", wo.Ref).Info("starting ingest afresh")
		}
		w, err = s.create(wo.Ref, wo.Desc, alg)
	}
	if err != nil {
		s.unlock(wo.Ref)
		return nil, err
	}
	return w, nil
}

// errRestart marks an ingest that cannot be resumed and is started afresh.
var errRestart = errors.New("cannot resume")

// resume reopens an existing ingest at its end. The digest state is not
// saved, so what is on disk is hashed again: whatever survived a crash,
// torn or not, is exactly what the digest covers.
func (s *store) resume(ref string, desc ocispec.Descriptor, alg digest.Algorithm) (*writer, error) {
	dir := s.ingestDir(ref)
	b, err := os.ReadFile(filepath.Join(dir, refFile))
	if err != nil {
		return nil, fmt.Errorf("ingest %q: %w", ref, err)
	}
	if string(b) != ref {
		return nil, fmt.Errorf("ingest %s holds ref %q: %w", dir, b, errRestart)
	}
	total := readTotal(dir)
	if desc.Size > 0 && total > 0 && desc.Size != total {
		// A different blob under the same ref: what is there is no use.
		return nil, fmt.Errorf("ingest total %d, writer wants %d: %w", total, desc.Size, errRestart)
	}
	if total == 0 && desc.Size > 0 {
		total = desc.Size
		if err := os.WriteFile(filepath.Join(dir, totalFile), strconv.AppendInt(nil, total, 10), 0o644); err != nil {
			return nil, fmt.Errorf("ingest %q: %w", ref, err)
		}
	}

	data := filepath.Join(dir, dataFile)
	f, err := os.OpenFile(data, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrPermission) {
		// Commit makes the data read-only just before renaming it into
		// place; a crash in between leaves it so.
		if os.Chmod(data, 0o644) == nil {
			f, err = os.OpenFile(data, os.O_RDWR, 0)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ingest %q: %w", ref, err)
	}
	fi, err := f.Stat()
	h := alg.Hash()
	var offset int64
	if err == nil {
		offset, err = hashPrefix(h, f, -1)
	}
	if err == nil {
		_, err = f.Seek(offset, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("resume ingest %q: %w", ref, err)
	}
	w := newWriter(s, ref, dir, f, alg, h, desc.Digest)
	w.offset, w.kicked, w.total = offset, offset, total
	w.startedAt = readTime(filepath.Join(dir, startedFile))
	// Reopening is not an update: the status keeps the time of the last
	// write until the next one, as Status read without a writer does.
	w.updatedAt = lastWrite(dir, fi)
	return w, nil
}

// create starts an ingest, replacing whatever unusable one was there.
func (s *store) create(ref string, desc ocispec.Descriptor, alg digest.Algorithm) (w *writer, err error) {
	dir := s.ingestDir(ref)
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("ingest %q: %w", ref, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ingest %q: %w", ref, err)
	}
	var f *os.File
	defer func() {
		if err != nil {
			if f != nil {
				f.Close()
			}
			os.RemoveAll(dir)
			err = fmt.Errorf("ingest %q: %w", ref, err)
		}
	}()

	now := time.Now()
	if err := writeTime(filepath.Join(dir, startedFile), now); err != nil {
		return nil, err
	}
	if err := writeTime(filepath.Join(dir, updatedFile), now); err != nil {
		return nil, err
	}
	if desc.Size > 0 {
		if err := os.WriteFile(filepath.Join(dir, totalFile), strconv.AppendInt(nil, desc.Size, 10), 0o644); err != nil {
			return nil, err
		}
	}
	if f, err = os.OpenFile(filepath.Join(dir, dataFile), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, refFile), []byte(ref), 0o644); err != nil {
		return nil, err
	}
	w = newWriter(s, ref, dir, f, alg, alg.Hash(), desc.Digest)
	w.total, w.startedAt, w.updatedAt = desc.Size, now, now
	return w, nil
}

// hashPrefix hashes the first n bytes of f (all of it if n < 0) and
// returns how many there were.
func hashPrefix(h hash.Hash, f *os.File, n int64) (int64, error) {
	if n == 0 {
		return 0, nil
	}
	buf := make([]byte, 1<<20)
	var off int64
	for n < 0 || off < n {
		p := buf
		if n >= 0 && n-off < int64(len(p)) {
			p = p[:n-off]
		}
		m, err := f.ReadAt(p, off)
		h.Write(p[:m])
		off += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return off, err
		}
	}
	return off, nil
}
