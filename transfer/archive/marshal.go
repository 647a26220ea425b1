package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/api/convert"
	transfertypes "github.com/llitfkitfk/containerd/api/types/transfer"
	"github.com/llitfkitfk/containerd/streaming"
	tstreaming "github.com/llitfkitfk/containerd/transfer/streaming"
)

// ImportOpt sets an option of NewImageImportStream.
type ImportOpt func(*ImageImportStream)

// WithForceCompression stores the uncompressed layers of a docker save
// archive gzipped.
func WithForceCompression(iis *ImageImportStream) { iis.forceCompress = true }

// ExportOpt sets an option of NewImageExportStream.
type ExportOpt func(*ImageExportStream)

// WithPlatform exports platform p (repeatable); none means the daemon's
// own.
func WithPlatform(p ocispec.Platform) ExportOpt {
	return func(ies *ImageExportStream) { ies.platforms = append(ies.platforms, p) }
}

// WithAllPlatforms exports every platform of an index.
func WithAllPlatforms(ies *ImageExportStream) { ies.allPlatforms = true }

// WithSkipCompatibilityManifest leaves Docker's manifest.json out.
func WithSkipCompatibilityManifest(ies *ImageExportStream) { ies.skipCompatibilityManifest = true }

// WithSkipNonDistributableBlobs leaves non-distributable layers out.
func WithSkipNonDistributableBlobs(ies *ImageExportStream) { ies.skipNonDistributable = true }

// MarshalAny is the client's side of UnmarshalAny: it opens a byte stream
// and sends the archive on it, as the daemon reads, in the background.
func (iis *ImageImportStream) MarshalAny(ctx context.Context, sc streaming.StreamCreator) (*anypb.Any, error) {
	id := tstreaming.GenerateID("import")
	s, err := sc.Create(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("open import stream: %w", err)
	}
	tstreaming.SendStream(ctx, iis.stream, s)
	return streaming.MarshalAny(&transfertypes.ImageImportStream{
		Stream:        id,
		MediaType:     iis.mediaType,
		ForceCompress: iis.forceCompress,
	})
}

// MarshalAny is the client's side of UnmarshalAny: it opens a byte stream
// and copies what the daemon writes on it to the export's writer, in the
// background until Finish.
func (ies *ImageExportStream) MarshalAny(ctx context.Context, sc streaming.StreamCreator) (*anypb.Any, error) {
	id := tstreaming.GenerateID("export")
	// The stream has a context of its own so that Finish can end it: a
	// daemon that leaves it open (containerd 2.x) would otherwise keep
	// the receiver waiting.
	sctx, cancel := context.WithCancel(ctx)
	s, err := sc.Create(sctx, id)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open export stream: %w", err)
	}
	ies.received = receiveArchive(sctx, cancel, s, ies.stream)
	return streaming.MarshalAny(&transfertypes.ImageExportStream{
		Stream:                    id,
		MediaType:                 ies.mediaType,
		Platforms:                 convert.PlatformsToProto(ies.platforms),
		AllPlatforms:              ies.allPlatforms,
		SkipCompatibilityManifest: ies.skipCompatibilityManifest,
		SkipNonDistributable:      ies.skipNonDistributable,
	})
}

// QuietEnd is how long Finish waits, after a successful transfer, for the
// daemon either to end the export stream or to send more. Our daemon ends
// it when the export is done; containerd 2.x's leaves it open until its
// collector runs, so the end of the archive is the transfer's end plus a
// stream that has gone quiet.
var QuietEnd = time.Second

// Finish waits until the archive has been copied to the export's writer
// and closes the writer. transferErr is the transfer call's result: after
// a failure, the copy is stopped instead of waited for.
func (ies *ImageExportStream) Finish(ctx context.Context, transferErr error) error {
	if ies.received == nil {
		return nil
	}
	err := ies.received.finish(ctx, transferErr == nil)
	if cerr := ies.stream.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("image archive: close output: %w", cerr)
	}
	return err
}

// receivedArchive copies a byte stream to a writer.
type receivedArchive struct {
	r      io.ReadCloser
	cancel context.CancelFunc // ends the stream
	done   chan struct{}
	err    error // of the copy, set before done is closed

	mu        sync.Mutex
	lastWrite time.Time
	writing   bool
}

func receiveArchive(ctx context.Context, cancel context.CancelFunc, s streaming.Stream, w io.Writer) *receivedArchive {
	ra := &receivedArchive{r: tstreaming.NewReader(ctx, s), cancel: cancel, done: make(chan struct{}), lastWrite: time.Now()}
	go func() {
		defer close(ra.done)
		_, ra.err = io.Copy(&watchedWriter{w: w, ra: ra}, ra.r)
	}()
	return ra
}

// watchedWriter records when the copy last wrote, for finish to tell a
// quiet stream from a busy one.
type watchedWriter struct {
	w  io.Writer
	ra *receivedArchive
}

func (ww *watchedWriter) Write(p []byte) (int, error) {
	ww.ra.mu.Lock()
	ww.ra.writing = true
	ww.ra.mu.Unlock()
	n, err := ww.w.Write(p)
	ww.ra.mu.Lock()
	ww.ra.writing = false
	ww.ra.lastWrite = time.Now()
	ww.ra.mu.Unlock()
	return n, err
}

func (ra *receivedArchive) quietFor() time.Duration {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if ra.writing {
		return 0
	}
	return time.Since(ra.lastWrite)
}

func (ra *receivedArchive) finish(ctx context.Context, ok bool) error {
	// Ending the stream ends the copy: what it reports then is of our
	// doing, not an error of the archive.
	stop := func() {
		ra.r.Close()
		ra.cancel()
		<-ra.done
	}
	defer ra.cancel()
	if !ok {
		stop()
		return nil
	}
	tick := time.NewTicker(QuietEnd / 4)
	defer tick.Stop()
	for {
		select {
		case <-ra.done:
			if ra.err != nil && !errors.Is(ra.err, streaming.ErrClosed) {
				return fmt.Errorf("image archive: receive: %w", ra.err)
			}
			return nil
		case <-tick.C:
			if ra.quietFor() >= QuietEnd {
				stop()
				return nil
			}
		case <-ctx.Done():
			stop()
			return ctx.Err()
		}
	}
}
