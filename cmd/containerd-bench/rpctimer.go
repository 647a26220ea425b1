package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// An rpcTimer stands between ctr and a daemon, passing every call through
// unchanged and noting how long the daemon took to answer it, so that a
// run's time can be split into the daemon's share and everyone else's.
// It adds a hop to each call, so it is used only for that split, never
// for the timings compared.
type rpcTimer struct {
	address string
	srv     *grpc.Server
	conn    *grpc.ClientConn

	mu    sync.Mutex
	calls []rpcCall
}

// An rpcCall is one call as the timer saw it.
type rpcCall struct {
	method string // "/containerd.services.tasks.v1.Tasks/Create"
	start  time.Time
	took   time.Duration
}

// busy is how long at least one of calls was under way: the union of
// their spans, so a Wait that outlasts a Start counts once.
func busy(calls []rpcCall) time.Duration {
	sorted := slices.SortedFunc(slices.Values(calls), func(a, b rpcCall) int { return a.start.Compare(b.start) })
	var total time.Duration
	var end time.Time
	for _, c := range sorted {
		cend := c.start.Add(c.took)
		switch {
		case !c.start.Before(end):
			total += c.took
			end = cend
		case cend.After(end):
			total += cend.Sub(end)
			end = cend
		}
	}
	return total
}

// rawCodec passes messages through as bytes. It is forced on both sides
// of the timer only, never registered, so the bench's own clients keep
// the real protobuf codec; its name keeps the wire content type.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Name() string                  { return "proto" }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}

// startRPCTimer listens beside d's socket and forwards to it.
func startRPCTimer(d *daemon) (*rpcTimer, error) {
	t := &rpcTimer{address: filepath.Join(d.dir, "timer.sock")}
	conn, err := grpc.NewClient("unix://"+d.address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", d.address, err)
	}
	os.Remove(t.address)
	l, err := net.Listen("unix", t.address)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("rpc timer: %w", err)
	}
	t.conn = conn
	t.srv = grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(t.forward))
	go t.srv.Serve(l)
	return t, nil
}

// forward relays one call of any kind, unary or streaming.
func (t *rpcTimer) forward(_ any, in grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(in)
	md, _ := metadata.FromIncomingContext(in.Context())
	ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(in.Context(), md))
	defer cancel()
	start := time.Now()
	out, err := t.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method,
		grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return err
	}
	go func() {
		for {
			var msg []byte
			if in.RecvMsg(&msg) != nil {
				out.CloseSend()
				return
			}
			if out.SendMsg(&msg) != nil {
				return
			}
		}
	}()
	var callErr error
	for headerSent := false; ; {
		var msg []byte
		if err := out.RecvMsg(&msg); err != nil {
			if !errors.Is(err, io.EOF) {
				callErr = err
			}
			break
		}
		if !headerSent {
			if h, err := out.Header(); err == nil {
				in.SendHeader(h)
			}
			headerSent = true
		}
		if err := in.SendMsg(&msg); err != nil {
			return err
		}
	}
	in.SetTrailer(out.Trailer())
	t.mu.Lock()
	t.calls = append(t.calls, rpcCall{method: method, start: start, took: time.Since(start)})
	t.mu.Unlock()
	return callErr
}

// take returns the calls noted since the last take.
func (t *rpcTimer) take() []rpcCall {
	t.mu.Lock()
	defer t.mu.Unlock()
	calls := t.calls
	t.calls = nil
	return calls
}

func (t *rpcTimer) close() {
	t.srv.Stop()
	t.conn.Close()
	os.Remove(t.address)
}

// taskCall reports whether a call is one of the Tasks service's, whose
// time is mostly the shim's and runc's rather than the daemon's.
func taskCall(method string) bool {
	return strings.HasPrefix(method, "/containerd.services.tasks.v1.Tasks/")
}
