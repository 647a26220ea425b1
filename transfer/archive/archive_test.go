package archive

import (
	"bytes"
	"context"
	"io"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/api/types"
	transfertypes "github.com/llitfkitfk/containerd/api/types/transfer"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/streaming"
	"github.com/llitfkitfk/containerd/transfer/plugins"
	tstreaming "github.com/llitfkitfk/containerd/transfer/streaming"
	"google.golang.org/protobuf/proto"
)

// withStream returns a manager holding the daemon's end of a pipe under
// id, and the client's end.
func withStream(ctx context.Context, t *testing.T, id string) (*streaming.Manager, streaming.Stream) {
	t.Helper()
	m := streaming.NewManager()
	daemonEnd, clientEnd := streaming.Pipe()
	if err := m.Register(ctx, id, daemonEnd); err != nil {
		t.Fatal(err)
	}
	return m, clientEnd
}

func unmarshal(ctx context.Context, t *testing.T, sg streaming.StreamGetter, m proto.Message) (interface{}, error) {
	t.Helper()
	a, err := streaming.MarshalAny(m)
	if err != nil {
		t.Fatal(err)
	}
	return plugins.Unmarshal(ctx, sg, a)
}

// The import's bytes are those the client sends on the named stream.
func TestImportStream(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "ns")
	m, client := withStream(ctx, t, "import-1")
	obj, err := unmarshal(ctx, t, m, &transfertypes.ImageImportStream{Stream: "import-1", MediaType: "application/x-tar", ForceCompress: true})
	if err != nil {
		t.Fatal(err)
	}
	iis, ok := obj.(*ImageImportStream)
	if !ok {
		t.Fatalf("unmarshalled into %T", obj)
	}
	want := bytes.Repeat([]byte("tar bytes "), 20000)
	tstreaming.SendStream(ctx, bytes.NewReader(want), client)
	r, mt, err := iis.ImportStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || mt != "application/x-tar" || !iis.ForceCompress() {
		t.Fatalf("got %d bytes of %s (force %v), want %d", len(got), mt, iis.ForceCompress(), len(want))
	}
}

// The export's writer sends to the client on the named stream; closing it
// ends the archive for the client.
func TestExportStream(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "ns")
	m, client := withStream(ctx, t, "export-1")
	obj, err := unmarshal(ctx, t, m, &transfertypes.ImageExportStream{
		Stream:                    "export-1",
		MediaType:                 ocispec.MediaTypeImageIndex,
		Platforms:                 []*types.Platform{{Os: "linux", Architecture: "arm64"}},
		AllPlatforms:              true,
		SkipCompatibilityManifest: true,
		SkipNonDistributable:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ies, ok := obj.(*ImageExportStream)
	if !ok {
		t.Fatalf("unmarshalled into %T", obj)
	}
	if len(ies.platforms) != 1 || ies.platforms[0].Architecture != "arm64" || !ies.allPlatforms ||
		!ies.skipCompatibilityManifest || !ies.skipNonDistributable {
		t.Fatalf("options %+v", ies)
	}
	w, mt, err := ies.ExportStream(ctx)
	if err != nil || mt != ocispec.MediaTypeImageIndex {
		t.Fatal(mt, err)
	}
	want := bytes.Repeat([]byte("archive "), 30000)
	go func() {
		w.Write(want)
		w.Close()
	}()
	got, err := io.ReadAll(tstreaming.NewReader(ctx, client))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("client read %d bytes, want %d", len(got), len(want))
	}
}

func TestStreamRequired(t *testing.T) {
	ctx := context.Background()
	m := streaming.NewManager()
	for _, msg := range []proto.Message{&transfertypes.ImageImportStream{}, &transfertypes.ImageExportStream{}} {
		if _, err := unmarshal(ctx, t, m, msg); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%T without a stream: %v", msg, err)
		}
	}
	for _, msg := range []proto.Message{&transfertypes.ImageImportStream{Stream: "x"}, &transfertypes.ImageExportStream{Stream: "x"}} {
		if _, err := unmarshal(ctx, t, m, msg); !errdefs.IsNotFound(err) {
			t.Errorf("%T with a stream not open: %v", msg, err)
		}
	}
}
