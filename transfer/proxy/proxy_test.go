package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/internal/testutil"
	streamingservice "github.com/llitfkitfk/containerd/services/streaming"
	transferservice "github.com/llitfkitfk/containerd/services/transfer"
	"github.com/llitfkitfk/containerd/streaming"
	streamproxy "github.com/llitfkitfk/containerd/streaming/proxy"
	"github.com/llitfkitfk/containerd/transfer"
	"github.com/llitfkitfk/containerd/transfer/archive"
	"github.com/llitfkitfk/containerd/transfer/image"
)

// daemonSide is the transferrer the test daemon runs.
type daemonSide func(ctx context.Context, src, dst interface{}, cfg *transfer.Config) error

func (d daemonSide) Transfer(ctx context.Context, src, dst interface{}, opts ...transfer.Opt) error {
	var cfg transfer.Config
	for _, o := range opts {
		o(&cfg)
	}
	return d(ctx, src, dst, &cfg)
}

// serve runs a daemon with a streaming service and, when t is not nil, a
// transfer service running it.
func serve(t *testing.T, d transfer.Transferrer) *grpc.ClientConn {
	t.Helper()
	m := streaming.NewManager()
	return testutil.Serve(t, func(s *grpc.Server) error {
		if err := streamingservice.NewService(m).Register(s); err != nil {
			return err
		}
		if d == nil {
			return nil
		}
		return transferservice.NewService([]transfer.Transferrer{d}, m).Register(s)
	})
}

// An import end to end: the archive goes over its byte stream, every
// progress report reaches the client, in order, before Transfer returns.
func TestTransferImportWithProgress(t *testing.T) {
	archiveBytes := bytes.Repeat([]byte("layer data "), 100000)
	var got []byte
	conn := serve(t, daemonSide(func(ctx context.Context, src, dst interface{}, cfg *transfer.Config) error {
		iis, ok := src.(*archive.ImageImportStream)
		if !ok {
			return fmt.Errorf("source %T", src)
		}
		if s, ok := dst.(*image.Store); !ok || s.Name() != "imported" {
			return fmt.Errorf("destination %v", dst)
		}
		r, _, _ := iis.ImportStream(ctx)
		var err error
		if got, err = io.ReadAll(r); err != nil {
			return err
		}
		for i := 0; i < 50; i++ {
			cfg.Progress(transfer.Progress{Event: "step", Name: fmt.Sprint(i), Progress: int64(i)})
		}
		return nil
	}))
	var (
		mu      sync.Mutex
		reports []transfer.Progress
	)
	tr := NewTransferrer(conn, streamproxy.NewStreamCreator(conn))
	err := tr.Transfer(context.Background(), archive.NewImageImportStream(bytes.NewReader(archiveBytes), ""), image.NewStore("imported"),
		transfer.WithProgress(func(p transfer.Progress) {
			mu.Lock()
			reports = append(reports, p)
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, archiveBytes) {
		t.Fatalf("daemon read %d bytes, want %d", len(got), len(archiveBytes))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) != 50 {
		t.Fatalf("%d progress reports before Transfer returned, want 50", len(reports))
	}
	for i, p := range reports {
		if p.Name != fmt.Sprint(i) || p.Progress != int64(i) {
			t.Fatalf("report %d is %+v", i, p)
		}
	}
}

// An export: the archive the daemon writes is all in the client's writer,
// closed, when Transfer returns.
func TestTransferExport(t *testing.T) {
	want := bytes.Repeat([]byte("tar "), 300000)
	conn := serve(t, daemonSide(func(ctx context.Context, src, dst interface{}, cfg *transfer.Config) error {
		ies := dst.(*archive.ImageExportStream)
		w, _, _ := ies.ExportStream(ctx)
		if _, err := w.Write(want); err != nil {
			return err
		}
		return w.Close()
	}))
	out := &closed{}
	tr := NewTransferrer(conn, streamproxy.NewStreamCreator(conn))
	if err := tr.Transfer(context.Background(), image.NewStore("", image.WithExtraReference("a:v1")), archive.NewImageExportStream(out, "")); err != nil {
		t.Fatal(err)
	}
	if !out.closed || !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("client has %d bytes (closed %v), want %d", out.Len(), out.closed, len(want))
	}
}

type closed struct {
	bytes.Buffer
	closed bool
}

func (c *closed) Close() error { c.closed = true; return nil }

// The daemon's errors come back as errdefs errors, message kept.
func TestTransferError(t *testing.T) {
	conn := serve(t, daemonSide(func(ctx context.Context, src, dst interface{}, cfg *transfer.Config) error {
		return fmt.Errorf("image %q: %w", "a:v1", errdefs.ErrNotFound)
	}))
	tr := NewTransferrer(conn, streamproxy.NewStreamCreator(conn))
	err := tr.Transfer(context.Background(), image.NewStore("a:v1"), image.NewStore("b:v1"))
	if !errdefs.IsNotFound(err) || !bytes.Contains([]byte(err.Error()), []byte(`image "a:v1"`)) {
		t.Fatalf("error %v, want the daemon's not found", err)
	}
}

// A daemon without the services (containerd 1.6) is ErrNotImplemented,
// before the archive is read.
func TestTransferNoService(t *testing.T) {
	conn := testutil.Serve(t, func(*grpc.Server) error { return nil })
	r := &readCounter{r: bytes.NewReader([]byte("archive"))}
	tr := NewTransferrer(conn, streamproxy.NewStreamCreator(conn))
	for _, withProgress := range []bool{false, true} {
		var opts []transfer.Opt
		if withProgress {
			opts = append(opts, transfer.WithProgress(func(transfer.Progress) {}))
		}
		err := tr.Transfer(context.Background(), archive.NewImageImportStream(r, ""), image.NewStore("x"), opts...)
		if !errdefs.IsNotImplemented(err) {
			t.Fatalf("progress %v: error %v, want not implemented", withProgress, err)
		}
		if n := r.n.Load(); n != 0 {
			t.Fatalf("%d bytes of the archive read", n)
		}
	}
	// A streaming service but no transfer service: the same.
	conn = serve(t, nil)
	tr = NewTransferrer(conn, streamproxy.NewStreamCreator(conn))
	if err := tr.Transfer(context.Background(), image.NewStore("a"), image.NewStore("b")); !errdefs.IsNotImplemented(err) {
		t.Fatalf("error %v, want not implemented", err)
	}
}

type readCounter struct {
	r io.Reader
	n atomic.Int64
}

func (rc *readCounter) Read(p []byte) (int, error) {
	n, err := rc.r.Read(p)
	rc.n.Add(int64(n))
	return n, err
}

// Something that is neither a transfer type nor a message is refused.
func TestTransferUnknownObject(t *testing.T) {
	conn := serve(t, daemonSide(func(context.Context, interface{}, interface{}, *transfer.Config) error {
		return errors.New("never reached")
	}))
	tr := NewTransferrer(conn, streamproxy.NewStreamCreator(conn))
	if err := tr.Transfer(context.Background(), 42, image.NewStore("b")); !errdefs.IsNotImplemented(err) {
		t.Fatalf("error %v", err)
	}
}
