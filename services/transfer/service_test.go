package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	api "github.com/llitfkitfk/containerd/api/services/transfer/v1"
	transfertypes "github.com/llitfkitfk/containerd/api/types/transfer"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/internal/testutil"
	streamingservice "github.com/llitfkitfk/containerd/services/streaming"
	"github.com/llitfkitfk/containerd/streaming"
	"github.com/llitfkitfk/containerd/streaming/proxy"
	"github.com/llitfkitfk/containerd/transfer"
	"github.com/llitfkitfk/containerd/transfer/image"
	"github.com/llitfkitfk/containerd/transfer/registry"
)

// fake is a transferrer that returns err, or does what do says.
type fake struct {
	mu       sync.Mutex
	calls    int
	src, dst interface{}
	do       func(ctx context.Context, src, dst interface{}, cfg *transfer.Config) error
	err      error
}

func (f *fake) Transfer(ctx context.Context, src, dst interface{}, opts ...transfer.Opt) error {
	f.mu.Lock()
	f.calls++
	f.src, f.dst = src, dst
	f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	var cfg transfer.Config
	for _, o := range opts {
		o(&cfg)
	}
	return f.do(ctx, src, dst, &cfg)
}

func serve(t *testing.T, ts ...transfer.Transferrer) (*streaming.Manager, *grpc.ClientConn) {
	t.Helper()
	m := streaming.NewManager()
	conn := testutil.Serve(t, func(s *grpc.Server) error {
		if err := streamingservice.NewService(m).Register(s); err != nil {
			return err
		}
		return NewService(ts, m).Register(s)
	})
	return m, conn
}

func marshal(t *testing.T, m *transfertypes.ImageStore) *anypb.Any {
	t.Helper()
	a, err := streaming.MarshalAny(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A pull-shaped transfer: the first transferrer does not know the pair,
// the second gets the objects, asks the client for credentials over the
// auth stream and reports progress on the progress stream, which the
// client reads to its end once the transfer is over.
func TestTransferDispatch(t *testing.T) {
	notMine := &fake{err: fmt.Errorf("pull only: %w", errdefs.ErrNotImplemented)}
	var gotCreds registry.Credentials
	mine := &fake{do: func(ctx context.Context, src, dst interface{}, cfg *transfer.Config) error {
		reg, ok := src.(*registry.OCIRegistry)
		if !ok {
			return fmt.Errorf("source %T", src)
		}
		var err error
		gotCreds, err = reg.CredentialHelper().GetCredentials(ctx, reg.Image(), "example.com")
		if err != nil {
			return err
		}
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: "sha256:" + sixtyFour, Size: 7}
		cfg.Progress(transfer.Progress{Event: "resolved", Name: reg.Image(), Desc: &desc})
		cfg.Progress(transfer.Progress{Event: "downloading", Name: "layer", Parents: []string{"m"}, Progress: 3, Total: 9})
		return nil
	}}
	m, conn := serve(t, notMine, mine)
	ctx := testutil.NS("ns")
	sc := proxy.NewStreamCreator(conn)

	auth, err := sc.Create(ctx, "auth-1")
	if err != nil {
		t.Fatal(err)
	}
	asked := make(chan string, 1)
	go func() {
		a, err := auth.Recv()
		if err != nil {
			return
		}
		var req transfertypes.AuthRequest
		a.UnmarshalTo(&req)
		asked <- req.GetHost() + " " + req.GetReference()
		resp, _ := streaming.MarshalAny(&transfertypes.AuthResponse{AuthType: transfertypes.AuthType_CREDENTIALS, Username: "user", Secret: "pw"})
		auth.Send(resp)
	}()
	progress, err := sc.Create(ctx, "progress-1")
	if err != nil {
		t.Fatal(err)
	}
	var reports []*transfertypes.Progress
	progressDone := make(chan error, 1)
	go func() {
		for {
			a, err := progress.Recv()
			if errors.Is(err, io.EOF) {
				progressDone <- nil
				return
			}
			if err != nil {
				progressDone <- err
				return
			}
			var p transfertypes.Progress
			if err := a.UnmarshalTo(&p); err != nil {
				progressDone <- err
				return
			}
			reports = append(reports, &p)
		}
	}()

	src, _ := streaming.MarshalAny(&transfertypes.OCIRegistry{
		Reference: "example.com/app:1",
		Resolver:  &transfertypes.RegistryResolver{AuthStream: "auth-1"},
	})
	_, err = api.NewTransferClient(conn).Transfer(ctx, &api.TransferRequest{
		Source:      src,
		Destination: marshal(t, &transfertypes.ImageStore{Name: "example.com/app:1"}),
		Options:     &api.TransferOptions{ProgressStream: "progress-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if notMine.calls != 1 || mine.calls != 1 {
		t.Fatalf("calls %d and %d, want 1 each", notMine.calls, mine.calls)
	}
	if dst, ok := mine.dst.(*image.Store); !ok || dst.Name() != "example.com/app:1" {
		t.Fatalf("destination %#v", mine.dst)
	}
	if got := <-asked; got != "example.com example.com/app:1" {
		t.Fatalf("asked for %q", got)
	}
	if gotCreds.Username != "user" || gotCreds.Secret != "pw" {
		t.Fatalf("credentials %+v", gotCreds)
	}
	// The progress stream ends when the transfer does.
	if err := <-progressDone; err != nil {
		t.Fatal(err)
	}
	if len(reports) != 2 {
		t.Fatalf("%d progress reports, want 2", len(reports))
	}
	if r := reports[0]; r.GetEvent() != "resolved" || r.GetName() != "example.com/app:1" || r.GetDesc().GetSize() != 7 ||
		r.GetDesc().GetMediaType() != ocispec.MediaTypeImageIndex {
		t.Errorf("first report %v", r)
	}
	if r := reports[1]; r.GetEvent() != "downloading" || r.GetProgress() != 3 || r.GetTotal() != 9 ||
		len(r.GetParents()) != 1 || r.GetDesc() != nil {
		t.Errorf("second report %v", r)
	}
	// The auth stream, used by the transfer, ended with it too.
	if _, err := auth.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("auth stream after the transfer: %v, want EOF", err)
	}
	if _, err := m.Get(ctx, "auth-1"); !errdefs.IsNotFound(err) {
		t.Fatalf("auth stream still registered: %v", err)
	}
}

const sixtyFour = "3333333333333333333333333333333333333333333333333333333333333333"

func TestTransferErrors(t *testing.T) {
	store := func(name string) *anypb.Any { return marshal(t, &transfertypes.ImageStore{Name: name}) }
	unknown, _ := streaming.MarshalAny(wrapperspb.String("?"))
	for _, tc := range []struct {
		name string
		ts   []transfer.Transferrer
		req  *api.TransferRequest
		want codes.Code
	}{
		{"nobody knows the pair", []transfer.Transferrer{&fake{err: errdefs.ErrNotImplemented}},
			&api.TransferRequest{Source: store("a"), Destination: store("b")}, codes.Unimplemented},
		{"transferrer error kept", []transfer.Transferrer{&fake{err: fmt.Errorf("image a: %w", errdefs.ErrNotFound)}, &fake{err: errors.New("never reached")}},
			&api.TransferRequest{Source: store("a"), Destination: store("b")}, codes.NotFound},
		{"unknown object type", []transfer.Transferrer{&fake{err: errors.New("never reached")}},
			&api.TransferRequest{Source: unknown, Destination: store("b")}, codes.Unimplemented},
		{"missing source", []transfer.Transferrer{&fake{err: errors.New("never reached")}},
			&api.TransferRequest{Destination: store("b")}, codes.InvalidArgument},
		{"progress stream not open", []transfer.Transferrer{&fake{err: errors.New("never reached")}},
			&api.TransferRequest{Source: store("a"), Destination: store("b"), Options: &api.TransferOptions{ProgressStream: "nope"}}, codes.NotFound},
		{"import stream not open", []transfer.Transferrer{&fake{err: errors.New("never reached")}},
			&api.TransferRequest{Source: mustAny(t, &transfertypes.ImageImportStream{Stream: "nope"}), Destination: store("b")}, codes.NotFound},
	} {
		_, conn := serve(t, tc.ts...)
		_, err := api.NewTransferClient(conn).Transfer(testutil.NS("ns"), tc.req)
		testutil.CheckCode(t, tc.name, err, tc.want)
	}
}

func mustAny(t *testing.T, m *transfertypes.ImageImportStream) *anypb.Any {
	t.Helper()
	a, err := streaming.MarshalAny(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
