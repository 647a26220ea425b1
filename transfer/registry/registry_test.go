package registry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"google.golang.org/protobuf/types/known/anypb"

	transfertypes "github.com/llitfkitfk/containerd/api/types/transfer"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/streaming"
	"github.com/llitfkitfk/containerd/transfer/plugins"
)

func unmarshal(ctx context.Context, t *testing.T, sg streaming.StreamGetter, m *transfertypes.OCIRegistry) (*OCIRegistry, error) {
	t.Helper()
	a, err := streaming.MarshalAny(m)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := plugins.Unmarshal(ctx, sg, a)
	if err != nil {
		return nil, err
	}
	r, ok := obj.(*OCIRegistry)
	if !ok {
		t.Fatalf("unmarshalled into %T", obj)
	}
	return r, nil
}

func TestUnmarshal(t *testing.T) {
	ctx := context.Background()
	r, err := unmarshal(ctx, t, streaming.NewManager(), &transfertypes.OCIRegistry{
		Reference: "alpine",
		Resolver: &transfertypes.RegistryResolver{
			Headers:       map[string]string{"x-test": "1"},
			HostDir:       "/etc/containerd/certs.d",
			DefaultScheme: "http",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Image(); got != "docker.io/library/alpine:latest" {
		t.Errorf("reference %q, want it normalised", got)
	}
	if got := r.Headers().Get("X-Test"); got != "1" {
		t.Errorf("header %q", got)
	}
	if r.HostDir() != "/etc/containerd/certs.d" || r.DefaultScheme() != "http" || r.CredentialHelper() != nil {
		t.Errorf("got %+v", r)
	}
	full, err := unmarshal(ctx, t, streaming.NewManager(), &transfertypes.OCIRegistry{Reference: "localhost:5000/a/b@sha256:" + string(make64('a'))})
	if err != nil {
		t.Fatal(err)
	}
	if want := "localhost:5000/a/b@sha256:" + string(make64('a')); full.Image() != want {
		t.Errorf("full reference changed to %q", full.Image())
	}
}

func make64(c byte) []byte {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return b
}

func TestUnmarshalRejects(t *testing.T) {
	ctx := context.Background()
	for name, m := range map[string]*transfertypes.OCIRegistry{
		"no reference":   {},
		"bad scheme":     {Reference: "a", Resolver: &transfertypes.RegistryResolver{DefaultScheme: "ftp"}},
		"missing stream": {Reference: "a", Resolver: &transfertypes.RegistryResolver{AuthStream: "nope"}},
	} {
		_, err := unmarshal(ctx, t, streaming.NewManager(), m)
		if name == "missing stream" {
			if !errdefs.IsNotFound(err) {
				t.Errorf("%s: %v, want NotFound", name, err)
			}
		} else if !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	a := &anypb.Any{TypeUrl: "containerd.types.transfer.OCIRegistry", Value: []byte{0xff}}
	if _, err := plugins.Unmarshal(ctx, streaming.NewManager(), a); !errdefs.IsInvalidArgument(err) {
		t.Errorf("garbage: %v", err)
	}
}

// Credentials are asked of the client on its auth stream, one question at
// a time, each answer read by its type.
func TestCredentialsOverAuthStream(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "ns")
	m := streaming.NewManager()
	daemonEnd, clientEnd := streaming.Pipe()
	if err := m.Register(ctx, "auth", daemonEnd); err != nil {
		t.Fatal(err)
	}
	r, err := unmarshal(ctx, t, m, &transfertypes.OCIRegistry{
		Reference: "example.com/app:1",
		Resolver:  &transfertypes.RegistryResolver{AuthStream: "auth"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The client answers by host.
	answers := map[string]*transfertypes.AuthResponse{
		"a.example.com": {AuthType: transfertypes.AuthType_CREDENTIALS, Username: "u", Secret: "p"},
		"b.example.com": {AuthType: transfertypes.AuthType_REFRESH, Secret: "tok"},
		"c.example.com": {AuthType: transfertypes.AuthType_HEADER, Secret: "Bearer x"},
	}
	asked := make(chan *transfertypes.AuthRequest, 10)
	go func() {
		for {
			a, err := clientEnd.Recv()
			if err != nil {
				return
			}
			var req transfertypes.AuthRequest
			if err := a.UnmarshalTo(&req); err != nil {
				return
			}
			asked <- &req
			resp, ok := answers[req.GetHost()]
			if !ok {
				resp = &transfertypes.AuthResponse{}
			}
			out, _ := streaming.MarshalAny(resp)
			clientEnd.Send(out)
		}
	}()
	helper := r.CredentialHelper()
	for host, want := range map[string]Credentials{
		"a.example.com": {Host: "a.example.com", Username: "u", Secret: "p"},
		"b.example.com": {Host: "b.example.com", Secret: "tok"},
		"c.example.com": {Host: "c.example.com", Header: "Bearer x"},
		"d.example.com": {Host: "d.example.com"},
	} {
		got, err := helper.GetCredentials(ctx, r.Image(), host)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: %+v, want %+v", host, got, want)
		}
		req := <-asked
		if req.GetHost() != host || req.GetReference() != "example.com/app:1" {
			t.Errorf("asked %v", req)
		}
	}
	// A client gone is an error, not empty credentials.
	clientEnd.Close()
	if _, err := helper.GetCredentials(ctx, r.Image(), "a.example.com"); err == nil {
		t.Fatal("credentials from a closed stream")
	}
}

// Pusher adds the manifest digest to a reference that has none; the
// resolver it reaches is made on first use.
func TestPusherRef(t *testing.T) {
	r := New("example.com/app:1", Options{Headers: http.Header{}})
	got := ""
	r.resolverOnce.Do(func() { r.resolver = refRecorder{&got} })
	_, err := r.Pusher(context.Background(), ocispecDesc())
	if !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Fatal(err)
	}
	if want := "example.com/app:1@" + testDigest; got != want {
		t.Fatalf("pusher for %q, want %q", got, want)
	}
}

// HTTP debug output is not supported: a logs stream is ended at once, so
// that the client waiting on it sees the end.
func TestLogsStreamEnded(t *testing.T) {
	ctx := context.Background()
	m := streaming.NewManager()
	daemonEnd, clientEnd := streaming.Pipe()
	if err := m.Register(ctx, "logs", daemonEnd); err != nil {
		t.Fatal(err)
	}
	if _, err := unmarshal(ctx, t, m, &transfertypes.OCIRegistry{
		Reference: "a",
		Resolver:  &transfertypes.RegistryResolver{HttpDebug: transfertypes.HTTPDebug_DEBUG, LogsStream: "logs"},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := clientEnd.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("client's logs stream: %v, want EOF", err)
	}
	if m.Len() != 0 {
		t.Fatal("logs stream still registered")
	}
}
