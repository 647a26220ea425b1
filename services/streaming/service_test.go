package streaming

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/wrapperspb"

	api "github.com/llitfkitfk/containerd/api/services/streaming/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/streaming"
	"github.com/llitfkitfk/containerd/streaming/proxy"
)

func serve(t *testing.T) (*streaming.Manager, *grpc.ClientConn) {
	t.Helper()
	m := streaming.NewManager()
	conn := testutil.Serve(t, NewService(m).Register)
	return m, conn
}

func str(t *testing.T, s string) *wrapperspb.StringValue { return wrapperspb.String(s) }

func sendString(t *testing.T, s streaming.Stream, v string) {
	t.Helper()
	a, err := streaming.MarshalAny(wrapperspb.String(v))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(a); err != nil {
		t.Fatal(err)
	}
}

func recvString(t *testing.T, s streaming.Stream) string {
	t.Helper()
	a, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var v wrapperspb.StringValue
	if err := a.UnmarshalTo(&v); err != nil {
		t.Fatal(err)
	}
	return v.GetValue()
}

// waitUnregistered waits, generously, for the manager to forget every
// stream: it does so as the call ends, after the client has seen the end.
func waitUnregistered(t *testing.T, m *streaming.Manager) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for m.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams still registered", m.Len())
		}
		time.Sleep(time.Millisecond)
	}
}

// Once Create returns, the daemon has the stream under its id in the
// client's namespace; messages flow both ways; the daemon closing it ends
// the client's stream with EOF and frees the id.
func TestStreamRoundTrip(t *testing.T) {
	m, conn := serve(t)
	ctx := testutil.NS("ns1")
	client, err := proxy.NewStreamCreator(conn).Create(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(testutil.NS("other"), "s1"); !errdefs.IsNotFound(err) {
		t.Fatalf("stream visible from another namespace: %v", err)
	}
	server, err := m.Get(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	sendString(t, client, "to daemon")
	if got := recvString(t, server); got != "to daemon" {
		t.Fatalf("daemon got %q", got)
	}
	sendString(t, server, "to client")
	if got := recvString(t, client); got != "to client" {
		t.Fatalf("client got %q", got)
	}
	// The client finishing its side is EOF for the daemon, not the end.
	client.Close()
	if _, err := server.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("daemon Recv after client CloseSend: %v", err)
	}
	sendString(t, server, "still open")
	if got := recvString(t, client); got != "still open" {
		t.Fatalf("client got %q", got)
	}
	server.Close()
	if _, err := client.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("client Recv after daemon Close: %v, want EOF", err)
	}
	if _, err := m.Get(ctx, "s1"); !errdefs.IsNotFound(err) {
		t.Fatalf("closed stream still registered: %v", err)
	}
	waitUnregistered(t, m)
}

// A client that goes away (its call cancelled) has its stream forgotten,
// and the daemon's side fails instead of hanging.
func TestClientDrops(t *testing.T) {
	m, conn := serve(t)
	ctx, cancel := context.WithCancel(testutil.NS("ns"))
	if _, err := proxy.NewStreamCreator(conn).Create(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	server, err := m.Get(ctx, "gone")
	if err != nil {
		t.Fatal(err)
	}
	recvErr := make(chan error, 1)
	go func() {
		_, err := server.Recv()
		recvErr <- err
	}()
	cancel()
	if err := <-recvErr; err == nil {
		t.Fatal("daemon Recv succeeded after the client went away")
	}
	waitUnregistered(t, m)
	a, _ := streaming.MarshalAny(str(t, "late"))
	if err := server.Send(a); err == nil {
		t.Fatal("Send on a finished stream succeeded")
	}
}

// A taken id is refused; the first stream keeps it.
func TestDuplicateID(t *testing.T) {
	m, conn := serve(t)
	ctx := testutil.NS("ns")
	sc := proxy.NewStreamCreator(conn)
	if _, err := sc.Create(ctx, "dup"); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Create(ctx, "dup"); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second Create: %v, want AlreadyExists", err)
	}
	if _, err := sc.Create(testutil.NS("elsewhere"), "dup"); err != nil {
		t.Fatalf("same id in another namespace: %v", err)
	}
	if m.Len() != 2 {
		t.Fatalf("%d streams registered, want 2", m.Len())
	}
}

// The first message must be a StreamInit with an id.
func TestBadInit(t *testing.T) {
	_, conn := serve(t)
	ctx := testutil.NS("ns")
	for name, first := range map[string]func() ([]byte, string){
		"not StreamInit": func() ([]byte, string) { return nil, "google.protobuf.StringValue" },
		"empty id":       func() ([]byte, string) { return nil, "containerd.services.streaming.v1.StreamInit" },
	} {
		s, err := api.NewStreamingClient(conn).Stream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		value, url := first()
		a, _ := streaming.MarshalAny(&api.StreamInit{})
		a.TypeUrl, a.Value = url, value
		if err := s.Send(a); err != nil {
			t.Fatal(err)
		}
		_, err = s.Recv()
		testutil.CheckCode(t, name, err, codes.InvalidArgument)
	}
}
