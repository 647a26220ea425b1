package archive

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"reflect"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/internal/testutil"
)

// The client's archive reaches the daemon's import byte for byte, with
// the options it was given.
func TestImportMarshalRoundTrip(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	archive := make([]byte, 3<<20+17) // several windows and a partial message
	rand.Read(archive)
	streams := testutil.NewStreams()
	a, err := NewImageImportStream(bytes.NewReader(archive), "application/x-tar", WithForceCompression).MarshalAny(ctx, streams)
	if err != nil {
		t.Fatal(err)
	}
	var daemon ImageImportStream
	if err := daemon.UnmarshalAny(ctx, streams, a); err != nil {
		t.Fatal(err)
	}
	r, mediaType, _ := daemon.ImportStream(ctx)
	if mediaType != "application/x-tar" || !daemon.ForceCompress() {
		t.Fatalf("media type %q, force compress %v", mediaType, daemon.ForceCompress())
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, archive) {
		t.Fatalf("daemon read %d bytes, not the %d of the archive", len(got), len(archive))
	}
}

// closeRecorder is an export's output.
type closeRecorder struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	closed bool
}

func (c *closeRecorder) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, errors.New("write after close")
	}
	return c.buf.Write(p)
}

func (c *closeRecorder) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

// exportPair marshals an export and unmarshals it on the daemon's side.
func exportPair(t *testing.T, ctx context.Context, opts ...ExportOpt) (*ImageExportStream, *ImageExportStream, *closeRecorder) {
	t.Helper()
	out := &closeRecorder{}
	client := NewImageExportStream(out, "", opts...)
	streams := testutil.NewStreams()
	a, err := client.MarshalAny(ctx, streams)
	if err != nil {
		t.Fatal(err)
	}
	daemon := &ImageExportStream{}
	if err := daemon.UnmarshalAny(ctx, streams, a); err != nil {
		t.Fatal(err)
	}
	return client, daemon, out
}

// What the daemon writes lands in the client's writer, which Finish
// closes once all of it is there; the options arrive as given.
func TestExportMarshalRoundTrip(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	arm := ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	client, daemon, out := exportPair(t, ctx, WithPlatform(arm), WithAllPlatforms, WithSkipCompatibilityManifest, WithSkipNonDistributableBlobs)
	if !reflect.DeepEqual(daemon.platforms, []ocispec.Platform{arm}) || !daemon.allPlatforms || !daemon.skipCompatibilityManifest || !daemon.skipNonDistributable {
		t.Fatalf("daemon's export options: %+v", daemon)
	}
	archive := make([]byte, 2<<20+5)
	rand.Read(archive)
	w, _, _ := daemon.ExportStream(ctx)
	if _, err := w.Write(archive); err != nil {
		t.Fatal(err)
	}
	w.Close() // as our daemon does when the export is done
	if err := client.Finish(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if !out.closed || !bytes.Equal(out.buf.Bytes(), archive) {
		t.Fatalf("client has %d bytes (closed %v), want %d", out.buf.Len(), out.closed, len(archive))
	}
}

// containerd 2.x's daemon leaves the stream open after the export: the
// client takes a stream gone quiet after the transfer as the end.
func TestExportFinishQuietStream(t *testing.T) {
	defer func(d time.Duration) { QuietEnd = d }(QuietEnd)
	QuietEnd = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, daemon, out := exportPair(t, ctx)
	w, _, _ := daemon.ExportStream(ctx)
	if _, err := w.Write([]byte("the whole archive")); err != nil {
		t.Fatal(err)
	}
	finished := make(chan error, 1)
	go func() { finished <- client.Finish(ctx, nil) }()
	select {
	case err := <-finished:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Finish did not return for a stream left open")
	}
	if out.buf.String() != "the whole archive" || !out.closed {
		t.Fatalf("client has %q (closed %v)", out.buf.String(), out.closed)
	}
}

// After a failed transfer Finish stops the copy rather than waiting.
func TestExportFinishAfterFailure(t *testing.T) {
	defer func(d time.Duration) { QuietEnd = d }(QuietEnd)
	QuietEnd = time.Hour // would hang if Finish waited for the stream
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, _, out := exportPair(t, ctx)
	if err := client.Finish(ctx, errors.New("transfer failed")); err != nil {
		t.Fatal(err)
	}
	if !out.closed {
		t.Fatal("output not closed")
	}
}
