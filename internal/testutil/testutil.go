// Package testutil holds what the daemon's tests share: a publisher that
// records events, an in-memory gRPC server, and checks of gRPC codes. Only
// tests import it.
package testutil

import (
	"context"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/namespaces"
)

// Published is one event a Publisher was given.
type Published struct {
	Namespace string
	Topic     string
	Event     events.Event
}

// Publisher records the events published to it. Like the daemon's
// exchange it refuses an event whose context has no namespace.
type Publisher struct {
	mu     sync.Mutex
	events []Published
}

var _ events.Publisher = (*Publisher)(nil)

// Publish records the event.
func (p *Publisher) Publish(ctx context.Context, topic string, ev events.Event) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, Published{Namespace: ns, Topic: topic, Event: ev})
	return nil
}

// Take returns the events recorded since the last Take, oldest first.
func (p *Publisher) Take() []Published {
	p.mu.Lock()
	defer p.mu.Unlock()
	evs := p.events
	p.events = nil
	return evs
}

// Topics returns the topics of the events recorded since the last Take,
// and forgets them.
func (p *Publisher) Topics() []string {
	var topics []string
	for _, ev := range p.Take() {
		topics = append(topics, ev.Topic)
	}
	return topics
}

// Serve runs an in-memory gRPC server with what register puts on it and
// returns a connection to it; both go when the test ends.
func Serve(t testing.TB, register func(*grpc.Server) error, opts ...grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	return Dial(t, Listen(t, register, opts...))
}

// Listen runs an in-memory gRPC server with what register puts on it,
// until the test ends, and returns its listener.
func Listen(t testing.TB, register func(*grpc.Server) error, opts ...grpc.ServerOption) *bufconn.Listener {
	t.Helper()
	lis := bufconn.Listen(4 << 20)
	srv := grpc.NewServer(opts...)
	if err := register(srv); err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis
}

// Dial returns a connection to the server on lis, closed when the test
// ends.
func Dial(t testing.TB, lis *bufconn.Listener, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, opts...)
	conn, err := grpc.NewClient("passthrough:///bufconn", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// WantCode fails the test unless err carries the gRPC code want.
func WantCode(t testing.TB, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got %v (%v), want %v", got, err, want)
	}
}

// NS is a background context in namespace ns.
func NS(ns string) context.Context {
	return namespaces.WithNamespace(context.Background(), ns)
}

// CheckCode reports an error, and lets the test go on, unless err carries
// the gRPC code want; what names the call, so that one test can report
// every call that answered wrongly.
func CheckCode(t testing.TB, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("%s: got %v (%v), want %v", what, got, err, want)
	}
}
