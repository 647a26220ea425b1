package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"testing"

	api "github.com/llitfkitfk/containerd/api/services/transfer/v1"
	transfertypes "github.com/llitfkitfk/containerd/api/types/transfer"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/streaming"
	"github.com/llitfkitfk/containerd/streaming/proxy"
	"github.com/llitfkitfk/containerd/transfer"
	"github.com/llitfkitfk/containerd/transfer/archive"
	"github.com/llitfkitfk/containerd/transfer/image"
	tstreaming "github.com/llitfkitfk/containerd/transfer/streaming"
)

// An import's archive travels from the client over gRPC with flow
// control, as ctr sends it, and reaches the transferrer whole.
func TestImportBytesOverGRPC(t *testing.T) {
	want := make([]byte, 3<<20+17)
	rand.Read(want)
	var got []byte
	importer := &fake{do: func(ctx context.Context, src, dst interface{}, _ *transfer.Config) error {
		iis, ok := src.(transfer.ImageImportStreamer)
		if !ok {
			return fmt.Errorf("source %T: %w", src, errdefs.ErrNotImplemented)
		}
		r, _, err := iis.ImportStream(ctx)
		if err != nil {
			return err
		}
		got, err = io.ReadAll(r)
		return err
	}}
	_, conn := serve(t, importer)
	ctx := testutil.NS("ns")
	s, err := proxy.NewStreamCreator(conn).Create(ctx, "import-1")
	if err != nil {
		t.Fatal(err)
	}
	tstreaming.SendStream(ctx, bytes.NewReader(want), s)
	src, _ := streaming.MarshalAny(&transfertypes.ImageImportStream{Stream: "import-1"})
	if _, err := api.NewTransferClient(conn).Transfer(ctx, &api.TransferRequest{
		Source:      src,
		Destination: marshal(t, &transfertypes.ImageStore{Name: "x"}),
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("transferrer read %d bytes, want %d", len(got), len(want))
	}
}

// An export's archive travels to the client, which reads it to its end:
// the stream ends when the export does.
func TestExportBytesOverGRPC(t *testing.T) {
	want := make([]byte, 2<<20+5)
	rand.Read(want)
	exporter := &fake{do: func(ctx context.Context, src, dst interface{}, _ *transfer.Config) error {
		if _, ok := src.(*image.Store); !ok {
			return errdefs.ErrNotImplemented
		}
		ies, ok := dst.(*archive.ImageExportStream)
		if !ok {
			return errdefs.ErrNotImplemented
		}
		w, _, err := ies.ExportStream(ctx)
		if err != nil {
			return err
		}
		_, err = w.Write(want)
		return err
	}}
	_, conn := serve(t, exporter)
	ctx := testutil.NS("ns")
	s, err := proxy.NewStreamCreator(conn).Create(ctx, "export-1")
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan []byte, 1)
	go func() {
		b, err := io.ReadAll(tstreaming.NewReader(ctx, s))
		if err != nil {
			t.Error(err)
		}
		read <- b
	}()
	dst, _ := streaming.MarshalAny(&transfertypes.ImageExportStream{Stream: "export-1"})
	if _, err := api.NewTransferClient(conn).Transfer(ctx, &api.TransferRequest{
		Source:      marshal(t, &transfertypes.ImageStore{Name: "x"}),
		Destination: dst,
	}); err != nil {
		t.Fatal(err)
	}
	if got := <-read; !bytes.Equal(got, want) {
		t.Fatalf("client read %d bytes, want %d", len(got), len(want))
	}
}
