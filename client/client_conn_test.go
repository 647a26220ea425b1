package client

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"

	versionapi "github.com/llitfkitfk/containerd/api/services/version/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/namespaces"
)

// versionServer answers Version and keeps the metadata of the last call.
type versionServer struct {
	versionapi.UnimplementedVersionServer
	mu sync.Mutex
	md metadata.MD
}

func (s *versionServer) Version(ctx context.Context, _ *emptypb.Empty) (*versionapi.VersionResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	s.md = md
	s.mu.Unlock()
	return &versionapi.VersionResponse{Version: "v9", Revision: "r"}, nil
}

func (s *versionServer) header(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func serve(t *testing.T) (string, *versionServer) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	vs := &versionServer{}
	s := grpc.NewServer()
	versionapi.RegisterVersionServer(s, vs)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return sock, vs
}

func TestNewNamespaces(t *testing.T) {
	sock, vs := serve(t)
	ctx := context.Background()
	for _, addr := range []string{sock, "unix://" + sock} {
		c, err := New(addr, WithDefaultNamespace("dflt"), WithTimeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		v, err := c.Version(ctx)
		if err != nil || v.Version != "v9" {
			t.Fatalf("%s: version %+v, %v", addr, v, err)
		}
		if ns := vs.header(namespaces.GRPCHeader); ns != "dflt" {
			t.Fatalf("%s: a call without a namespace went in %q", addr, ns)
		}
		if _, err := c.Version(namespaces.WithNamespace(ctx, "mine")); err != nil {
			t.Fatal(err)
		}
		if ns := vs.header(namespaces.GRPCHeader); ns != "mine" {
			t.Fatalf("%s: the context's namespace became %q", addr, ns)
		}
		// A namespace that came in with a request being served goes on.
		in := metadata.NewIncomingContext(ctx, metadata.Pairs(namespaces.GRPCHeader, "incoming"))
		if _, err := c.Version(in); err != nil {
			t.Fatal(err)
		}
		if ns := vs.header(namespaces.GRPCHeader); ns != "incoming" {
			t.Fatalf("%s: the incoming namespace became %q", addr, ns)
		}
		// The raw connection has the default too.
		if _, err := versionapi.NewVersionClient(c.Conn()).Version(ctx, &emptypb.Empty{}); err != nil {
			t.Fatal(err)
		}
		if ns := vs.header(namespaces.GRPCHeader); ns != "dflt" {
			t.Fatalf("%s: a raw call went in %q", addr, ns)
		}
		c.Close()
	}

	// Without a default, a call without a namespace names none: the
	// daemon says it needs one.
	c, err := New(sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Version(ctx); err != nil {
		t.Fatal(err)
	}
	if ns := vs.header(namespaces.GRPCHeader); ns != "" {
		t.Fatalf("a client without a default namespace sent %q", ns)
	}
	c.Close()

	// On a connection made elsewhere, the client's services add it.
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, err = NewWithConn(conn, WithDefaultNamespace("other"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Version(leases.WithLease(ctx, "l1")); err != nil {
		t.Fatal(err)
	}
	if ns, l := vs.header(namespaces.GRPCHeader), vs.header(leases.GRPCHeader); ns != "other" || l != "l1" {
		t.Fatalf("NewWithConn: namespace %q, lease %q", ns, l)
	}
}

// A failed connect says which address and why, on one line; a socket
// that is missing or refuses fails at once, not at the timeout.
func TestNewDialErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	// A socket file with no one listening: connection refused.
	refused := filepath.Join(dir, "refused.sock")
	l, err := net.Listen("unix", refused)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(refused); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ addr, why string }{
		{missing, "no such file or directory"},
		{"unix://" + refused, "connection refused"},
	} {
		start := time.Now()
		_, err := New(tc.addr, WithTimeout(time.Minute))
		if err == nil {
			t.Fatalf("%s: connected", tc.addr)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "failed to dial \""+tc.addr+"\": ") ||
			!strings.Contains(msg, tc.why) || strings.Contains(msg, "\n") || !errdefs.IsUnavailable(err) {
			t.Errorf("%s: %q", tc.addr, msg)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("%s: failed after %v, not at once", tc.addr, d)
		}
	}
	if _, err := New(""); err == nil {
		t.Error("empty address accepted")
	}
}
