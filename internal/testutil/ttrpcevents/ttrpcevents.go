// Package ttrpcevents is a fake of the daemon's ttrpc events service, which
// shims forward their events to. It is a package of its own, apart from
// testutil, because it registers this project's API protos, which must not
// meet containerd's in the client test module.
package ttrpcevents

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/emptypb"

	eventsapi "github.com/llitfkitfk/containerd/api/services/ttrpc/events/v1"
	"github.com/llitfkitfk/containerd/api/types"
	"github.com/llitfkitfk/containerd/namespaces"
)

// Forwarded is one event the Server took: the envelope, and the
// namespace of the call's ttrpc metadata.
type Forwarded struct {
	Envelope    *types.Envelope
	MetadataNS  string
	ReceivedAt  time.Time
	ServerIndex int
}

// Server is what a daemon's ttrpc events service is to a shim: it
// takes Forward calls on a unix socket and records them. It can be
// stopped and started again on the same socket, as a restarting daemon.
type Server struct {
	t    testing.TB
	Path string

	mu      sync.Mutex
	got     []Forwarded
	server  *ttrpc.Server
	started int
	// Refuse, when set, answers each call with its error instead.
	Refuse func(*types.Envelope) error
}

// ServeTTRPCEvents serves on path until the test ends.
func Serve(t testing.TB, path string) *Server {
	s := &Server{t: t, Path: path}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start serves again after Stop.
func (s *Server) Start() {
	s.t.Helper()
	os.Remove(s.Path)
	l, err := net.Listen("unix", s.Path)
	if err != nil {
		s.t.Fatal(err)
	}
	server, err := ttrpc.NewServer()
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.started++
	index := s.started
	s.server = server
	s.mu.Unlock()
	eventsapi.RegisterEventsService(server, forwardFunc(func(ctx context.Context, req *eventsapi.ForwardRequest) (*emptypb.Empty, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.Refuse != nil {
			if err := s.Refuse(req.GetEnvelope()); err != nil {
				return nil, err
			}
		}
		var ns string
		if v, ok := ttrpc.GetMetadataValue(ctx, namespaces.TTRPCHeader); ok {
			ns = v
		}
		s.got = append(s.got, Forwarded{Envelope: req.GetEnvelope(), MetadataNS: ns, ReceivedAt: time.Now(), ServerIndex: index})
		return &emptypb.Empty{}, nil
	}))
	go func() {
		if err := server.Serve(context.Background(), l); err != nil && !errors.Is(err, ttrpc.ErrServerClosed) {
			s.t.Logf("ttrpc events server: %v", err)
		}
	}()
}

// Stop closes the server and its connections, as a daemon killed.
func (s *Server) Stop() {
	s.mu.Lock()
	server := s.server
	s.server = nil
	s.mu.Unlock()
	if server != nil {
		server.Close()
	}
}

// Events returns what was forwarded so far.
func (s *Server) Events() []Forwarded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Forwarded(nil), s.got...)
}

// WaitFor waits until n events were forwarded, failing the test after
// timeout, and returns them.
func (s *Server) WaitFor(n int, timeout time.Duration) []Forwarded {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := s.Events()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d events forwarded after %v, want %d", len(got), timeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type forwardFunc func(context.Context, *eventsapi.ForwardRequest) (*emptypb.Empty, error)

func (f forwardFunc) Forward(ctx context.Context, req *eventsapi.ForwardRequest) (*emptypb.Empty, error) {
	return f(ctx, req)
}
