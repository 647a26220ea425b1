package streaming

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/namespaces"
)

type fakeStream struct {
	Stream
	done   chan struct{}
	closed bool
}

func (f *fakeStream) Close() error          { f.closed = true; return nil }
func (f *fakeStream) Done() <-chan struct{} { return f.done }

func TestManager(t *testing.T) {
	m := NewManager()
	ns1 := namespaces.WithNamespace(context.Background(), "one")
	ns2 := namespaces.WithNamespace(context.Background(), "two")
	s := &fakeStream{done: make(chan struct{})}

	if err := m.Register(ns1, "", s); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("empty id: %v", err)
	}
	if err := m.Register(ns1, strings.Repeat("x", 257), s); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("long id: %v", err)
	}
	if err := m.Register(ns1, "a", s); err != nil {
		t.Fatal(err)
	}
	if err := m.Register(ns1, "a", &fakeStream{}); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("duplicate id: %v", err)
	}
	if _, err := m.Get(ns2, "a"); !errdefs.IsNotFound(err) {
		t.Fatalf("stream of another namespace: %v", err)
	}
	got, err := m.Get(ns1, "a")
	if err != nil {
		t.Fatal(err)
	}
	// Closing what Get returned closes the stream and frees the id.
	if err := got.Close(); err != nil || !s.closed {
		t.Fatalf("Close: %v, closed %v", err, s.closed)
	}
	if _, err := m.Get(ns1, "a"); !errdefs.IsNotFound(err) {
		t.Fatalf("after Close: %v", err)
	}
	s2 := &fakeStream{done: make(chan struct{})}
	if err := m.Register(ns1, "a", s2); err != nil {
		t.Fatalf("id not freed: %v", err)
	}
	// The first stream's end must not drop its successor.
	close(s.done)
	if _, err := m.Get(ns1, "a"); err != nil {
		t.Fatalf("successor dropped: %v", err)
	}
}

// A stream whose client went away is forgotten.
func TestManagerForgetsDone(t *testing.T) {
	m := NewManager()
	ctx := namespaces.WithNamespace(context.Background(), "ns")
	s := &fakeStream{done: make(chan struct{})}
	if err := m.Register(ctx, "x", s); err != nil {
		t.Fatal(err)
	}
	close(s.done)
	// The manager forgets from a goroutine: wait for it, generously.
	deadline := time.Now().Add(10 * time.Second)
	for m.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("stream still registered after its client went away")
		}
		time.Sleep(time.Millisecond)
	}
	if s.closed {
		t.Fatal("a stream that ended by itself was closed again")
	}
}

func TestMarshalAny(t *testing.T) {
	a, err := MarshalAny(wrapperspb.String("x"))
	if err != nil {
		t.Fatal(err)
	}
	if a.GetTypeUrl() != "google.protobuf.StringValue" {
		t.Fatalf("type URL %q, want the bare full name", a.GetTypeUrl())
	}
	var v wrapperspb.StringValue
	if err := a.UnmarshalTo(&v); err != nil || v.GetValue() != "x" {
		t.Fatalf("round trip: %v %v", &v, err)
	}
}

func TestPipe(t *testing.T) {
	a, b := Pipe()
	m, _ := MarshalAny(&emptypb.Empty{})
	if err := a.Send(m); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if _, err := b.Recv(); err != nil {
		t.Fatalf("message sent before close lost: %v", err)
	}
	if _, err := b.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after close: %v, want EOF", err)
	}
	if err := b.Send(m); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
}
