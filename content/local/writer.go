package local

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
)

const (
	// Writes at least this large are hashed while another goroutine
	// copies them to the file; below it the handoff costs more than it
	// saves.
	parallelMin = 64 << 10
	// Every writebackChunk bytes the kernel is asked to start writing the
	// data out, so that Commit's sync finds most of it on disk already
	// instead of waiting for all of it. 8 MiB beat 4 and 32 when
	// measured with BenchmarkWrite.
	writebackChunk = 8 << 20
	// Every syncChunk bytes a background fdatasync is started, one at a
	// time. Written back is not yet durable: this machine's disk (a VM's)
	// takes writes into a cache of its own, which only a flush empties, at
	// about 1.8 GB/s. Without these syncs, Commit's sync flushed the whole
	// blob: 135-175 ms for 256 MiB written at the pace the Content service
	// receives it (~1 ms a MiB), against 14-23 ms with a sync every 16 or
	// 32 MiB (a throwaway program writing 1 MiB chunks); in this store,
	// the commit of BenchmarkWrite's blob went from 130-155 ms to 22-29 ms.
	// They change nothing a crash may lose: they only make data durable
	// sooner, and a commit still syncs it all.
	syncChunk = 32 << 20
)

// writer is one open ingest. Like any io.Writer it is used by one
// goroutine at a time.
type writer struct {
	s         *store
	ref       string
	dir       string
	f         *os.File // nil once closed or committed
	fd        int
	alg       digest.Algorithm
	h         hash.Hash // of data[:offset]
	expected  digest.Digest
	offset    int64
	total     int64
	startedAt time.Time
	updatedAt time.Time
	// err is set when a failed write left the file behind the hash; only
	// Truncate or reopening the ingest, which rehash the file, clear it.
	err error

	kicked int64 // writeback has been started for data[:kicked]
	done   chan writeResult

	// The background sync (see syncChunk) was started with data[:synced]
	// written; it closes bgSync when done, having set bgErr if it failed.
	// Its error must reach Sync or Commit: the kernel reports a failed
	// writeback to one sync of a file only, and this was it.
	synced int64
	bgSync chan struct{}
	bgErr  error
	// syncFailed is set when any sync of the file failed. The kernel will
	// not report that failure again, not even to a writer that resumes
	// the ingest, so the data goes when the writer does (dropData).
	syncFailed bool
}

type writeResult struct {
	n   int64
	err error
}

func newWriter(s *store, ref, dir string, f *os.File, alg digest.Algorithm, h hash.Hash, expected digest.Digest) *writer {
	return &writer{
		s: s, ref: ref, dir: dir, f: f, fd: int(f.Fd()),
		alg: alg, h: h, expected: expected,
		done: make(chan writeResult, 1),
	}
}

func (w *writer) closedErr(op string) error {
	return fmt.Errorf("%s ref %s: writer closed: %w", op, w.ref, errdefs.ErrFailedPrecondition)
}

// Write appends p. A large p is hashed and written to the file at once,
// so the two costs overlap rather than add up.
func (w *writer) Write(p []byte) (int, error) {
	return w.WriteReceived(p, time.Time{})
}

// WriteReceived appends p as data received at that time, which becomes
// the ingest's update time; the zero time stands for the end of the write.
func (w *writer) WriteReceived(p []byte, received time.Time) (int, error) {
	n, err := w.WriteVector([][]byte{p}, received)
	return int(n), err
}

// WriteVector appends the pieces, received at that time, with one
// writev: the Content service passes the buffers gRPC received a chunk
// in, and this writes them without gathering them first.
func (w *writer) WriteVector(pieces [][]byte, received time.Time) (int64, error) {
	if w.f == nil {
		return 0, w.closedErr("write")
	}
	if w.err != nil {
		return 0, w.err
	}
	size := 0
	for _, p := range pieces {
		size += len(p)
	}
	if size == 0 {
		return 0, nil
	}
	bg := w.syncDue(w.offset + int64(size))
	if size < parallelMin {
		n, err := writev(w.fd, pieces)
		w.startSync(bg)
		hashPieces(w.h, pieces, n)
		w.wrote(n, received)
		if err != nil {
			return n, fmt.Errorf("write ref %s: %w", w.ref, err)
		}
		return n, nil
	}

	// The goroutine that writes also starts the writeback, if it is due:
	// hashing is the slower half, so the writeback's submission (about
	// 20 ms of CPU per 256 MiB) is then off the path that sets the pace.
	kickFrom, kickTo := w.kicked, w.offset+int64(size)
	if kickTo-kickFrom < writebackChunk {
		kickTo = kickFrom
	}
	go func() {
		n, err := writev(w.fd, pieces)
		if err == nil && kickTo > kickFrom {
			unix.SyncFileRange(w.fd, kickFrom, kickTo-kickFrom, unix.SYNC_FILE_RANGE_WRITE)
		}
		w.startSync(bg)
		w.done <- writeResult{n, err}
	}()
	for _, p := range pieces {
		w.h.Write(p)
	}
	r := <-w.done
	if r.err == nil {
		w.kicked = kickTo
	}
	w.wrote(r.n, received)
	if r.err != nil {
		w.err = fmt.Errorf("write ref %s at %d: %w", w.ref, w.offset, r.err)
		return r.n, w.err
	}
	return r.n, nil
}

// fdatasync is unix.Fdatasync; tests make it fail.
var fdatasync = unix.Fdatasync

// bgErrOr is the background sync's error, or a generic one if the
// failed sync was another.
func (w *writer) bgErrOr() error {
	if w.bgErr != nil {
		return w.bgErr
	}
	return errors.New("sync failed")
}

// syncDue says whether a background sync is to start once the file is
// written up to end, and returns the channel it is to close if so.
func (w *writer) syncDue(end int64) chan struct{} {
	if end-w.synced < syncChunk {
		return nil
	}
	if w.bgSync != nil {
		select {
		case <-w.bgSync:
		default:
			return nil // one at a time
		}
		if w.bgErr != nil {
			return nil // Sync or Commit will report it
		}
	}
	w.synced = end
	w.bgSync = make(chan struct{})
	return w.bgSync
}

// startSync starts the background sync syncDue asked for, if any.
func (w *writer) startSync(done chan struct{}) {
	if done == nil {
		return
	}
	go func() {
		if err := fdatasync(w.fd); err != nil {
			w.bgErr = fmt.Errorf("sync ref %s: %w", w.ref, err)
		}
		close(done)
	}()
}

// waitSync waits for the background sync, if one ran, and returns its
// error. The file must not be closed before.
func (w *writer) waitSync() error {
	if w.bgSync == nil {
		return nil
	}
	<-w.bgSync
	if w.bgErr != nil {
		w.syncFailed = true
	}
	return w.bgErr
}

// dropData empties the ingest after a failed sync: what the file holds
// may not be on disk, and no later sync would say so.
func (w *writer) dropData() {
	if err := os.Truncate(filepath.Join(w.dir, dataFile), 0); err != nil {
		log.L.WithError(err).WithField("ref", w.ref).Warn("empty ingest after a failed sync")
	}
}

// maxIovecs is how many pieces one writev takes (Linux's IOV_MAX).
const maxIovecs = 1024

// writev writes all of pieces to fd at its file position, and returns
// how many bytes it wrote.
func writev(fd int, pieces [][]byte) (int64, error) {
	var total int64
	for _, p := range pieces {
		if len(p) == 0 {
			// Empty pieces would make a writev of nothing but them look
			// like a short write.
			pieces = slices.DeleteFunc(slices.Clone(pieces), func(p []byte) bool { return len(p) == 0 })
			break
		}
	}
	for len(pieces) > 0 {
		batch := pieces[:min(len(pieces), maxIovecs)]
		n, err := unix.Writev(fd, batch)
		if n > 0 {
			total += int64(n)
		}
		if err == unix.EINTR {
			err = nil
		}
		if err != nil {
			return total, err
		}
		if n == 0 {
			return total, io.ErrShortWrite
		}
		// Drop what was written, partly written pieces included.
		for n > 0 && len(pieces) > 0 {
			if n >= len(pieces[0]) {
				n -= len(pieces[0])
				pieces = pieces[1:]
			} else {
				// Copy the header so as not to change the caller's slice.
				rest := append([][]byte{pieces[0][n:]}, pieces[1:]...)
				pieces, n = rest, 0
			}
		}
	}
	return total, nil
}

// hashPieces adds the first n bytes of pieces to h.
func hashPieces(h hash.Hash, pieces [][]byte, n int64) {
	for _, p := range pieces {
		if n <= 0 {
			return
		}
		p = p[:min(int64(len(p)), n)]
		h.Write(p)
		n -= int64(len(p))
	}
}

// wrote accounts for n bytes appended to the file, received at that time,
// or now if it is zero. (Close records the update time for a resumed
// ingest to find; see lastWrite.)
func (w *writer) wrote(n int64, received time.Time) {
	if received.IsZero() {
		received = time.Now()
	}
	w.updatedAt = received
	w.offset += n
	if w.offset-w.kicked >= writebackChunk {
		// Only a hint: an error here would show again at the sync.
		unix.SyncFileRange(w.fd, w.kicked, w.offset-w.kicked, unix.SYNC_FILE_RANGE_WRITE)
		w.kicked = w.offset
	}
}

func (w *writer) Digest() digest.Digest {
	return digest.NewDigest(w.alg, w.h)
}

func (w *writer) Status() (content.Status, error) {
	return content.Status{
		Ref:       w.ref,
		Offset:    w.offset,
		Total:     w.total,
		Expected:  w.expected,
		StartedAt: w.startedAt,
		UpdatedAt: w.updatedAt,
	}, nil
}

// Truncate cuts the ingest to its first size bytes, which are hashed
// again unless size is 0.
func (w *writer) Truncate(size int64) error {
	if w.f == nil {
		return w.closedErr("truncate")
	}
	if size < 0 || size > w.offset {
		return fmt.Errorf("truncate ref %s to %d: outside [0, %d]: %w", w.ref, size, w.offset, errdefs.ErrInvalidArgument)
	}
	if err := w.f.Truncate(size); err != nil {
		return fmt.Errorf("truncate ref %s: %w", w.ref, err)
	}
	if _, err := w.f.Seek(size, io.SeekStart); err != nil {
		return fmt.Errorf("truncate ref %s: %w", w.ref, err)
	}
	// What a failed sync left is no longer there when nothing is kept.
	w.waitSync()
	if size == 0 {
		w.bgErr, w.syncFailed = nil, false
	}
	w.h.Reset()
	w.offset, w.kicked, w.err = 0, 0, nil
	n, err := hashPrefix(w.h, w.f, size)
	w.offset, w.kicked, w.synced = n, n, n
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		w.err = fmt.Errorf("truncate ref %s: rehash: %w", w.ref, err)
		return w.err
	}
	w.updatedAt = time.Now()
	return nil
}

// Commit makes the ingest a blob. Whatever happens the writer is done
// and the ref unlocked; if the size or digest is not what the caller
// expects, the ingest is kept so that it can be resumed or aborted.
// Sync makes the data written so far durable, as Commit will: done
// before, it takes that wait out of a caller's critical section (the
// metadata database's transaction), leaving Commit's own sync little to
// do.
func (w *writer) Sync() error {
	if w.f == nil {
		return w.closedErr("sync")
	}
	if err := w.waitSync(); err != nil {
		return err
	}
	if err := fdatasync(w.fd); err != nil {
		w.syncFailed = true
		return fmt.Errorf("sync ref %s: %w", w.ref, err)
	}
	return nil
}

func (w *writer) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	if w.f == nil {
		return w.closedErr("commit")
	}
	f := w.f
	w.f = nil
	defer w.s.unlock(w.ref)
	w.waitSync() // before f can be closed

	var base content.Info
	for _, opt := range opts {
		if err := opt(&base); err != nil {
			f.Close()
			return err
		}
	}
	if w.syncFailed {
		f.Close()
		w.dropData()
		return fmt.Errorf("commit ref %s: an earlier sync failed: %w", w.ref, w.bgErrOr())
	}
	if w.err != nil {
		f.Close()
		return w.err
	}

	if err := fdatasync(w.fd); err != nil {
		f.Close()
		w.dropData()
		return fmt.Errorf("commit ref %s: %w", w.ref, err)
	}
	fi, err := f.Stat()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("commit ref %s: %w", w.ref, err)
	}
	if size > 0 && fi.Size() != size {
		return fmt.Errorf("unexpected commit size %d, expected %d: %w", fi.Size(), size, errdefs.ErrFailedPrecondition)
	}
	dgst := w.Digest()
	if expected != "" && expected != dgst {
		return fmt.Errorf("unexpected commit digest %s, expected %s: %w", dgst, expected, errdefs.ErrFailedPrecondition)
	}

	target, err := w.s.blobPath(dgst)
	if err != nil {
		return err
	}
	if err := w.publish(filepath.Join(w.dir, dataFile), target); err != nil {
		if errors.Is(err, fs.ErrExist) {
			w.removeIngest(ctx)
			return fmt.Errorf("content %s: %w", dgst, errdefs.ErrAlreadyExists)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("commit ref %s: ingest aborted: %w", w.ref, errdefs.ErrNotFound)
		}
		return fmt.Errorf("commit ref %s: %w", w.ref, err)
	}
	// The blob is in; failing to make the rename durable is only logged,
	// as the commit cannot be taken back now.
	if err := syncDir(filepath.Dir(target)); err != nil {
		log.G(ctx).WithError(err).WithField("digest", dgst).Warn("sync blob directory")
	}
	w.removeIngest(ctx)

	if w.s.ls != nil && base.Labels != nil {
		if err := w.s.ls.Set(dgst, base.Labels); err != nil {
			// The blob is in; its labels can be set again with Update.
			log.G(ctx).WithError(err).WithField("digest", dgst).Error("set labels of committed content")
		}
	}
	return nil
}

// publish moves the synced data to target, never replacing a blob there.
// The data is made read-only and stamped with the commit time first, so
// the blob appears complete in every respect.
func (w *writer) publish(data, target string) error {
	now := time.Now()
	if err := os.Chmod(data, 0o444); err != nil {
		return err
	}
	os.Chtimes(data, now, now) // CreatedAt; the write time would do too
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := renameNoReplace(data, target); err != nil {
		os.Chmod(data, 0o644) // so that the ingest can be resumed
		return err
	}
	return nil
}

func (w *writer) removeIngest(ctx context.Context) {
	if err := os.RemoveAll(w.dir); err != nil {
		log.G(ctx).WithError(err).WithField("ref", w.ref).Warn("remove committed ingest")
	}
}

// Close leaves the ingest to be resumed later. Nothing is synced: the page
// cache survives the daemon, and after a machine crash resuming hashes
// whatever the file holds.
func (w *writer) Close() error {
	if w.f == nil {
		return nil
	}
	w.waitSync()
	err := w.f.Close()
	w.f = nil
	if w.syncFailed {
		w.dropData()
	}
	writeTime(filepath.Join(w.dir, updatedFile), w.updatedAt) // informational
	w.s.unlock(w.ref)
	if err != nil {
		return fmt.Errorf("close ref %s: %w", w.ref, err)
	}
	return nil
}

// renameNoReplace renames old to new unless new exists, atomically where
// the filesystem supports it.
func renameNoReplace(old, new string) error {
	err := unix.Renameat2(unix.AT_FDCWD, old, unix.AT_FDCWD, new, unix.RENAME_NOREPLACE)
	if err != unix.EINVAL && err != unix.ENOSYS {
		if err != nil {
			return &os.LinkError{Op: "rename", Old: old, New: new, Err: err}
		}
		return nil
	}
	if _, err := os.Lstat(new); err == nil {
		return &os.LinkError{Op: "rename", Old: old, New: new, Err: unix.EEXIST}
	}
	return os.Rename(old, new)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
