package client

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"

	eventsapi "github.com/llitfkitfk/containerd/api/services/events/v1"
	"github.com/llitfkitfk/containerd/api/types"
	"github.com/llitfkitfk/containerd/errdefs"
)

// eventsServer sends n envelopes to each subscriber, then either ends
// the stream (as a stopping daemon does) or waits for the client to go.
type eventsServer struct {
	eventsapi.UnimplementedEventsServer
	n   int
	end bool
}

func (s *eventsServer) Subscribe(req *eventsapi.SubscribeRequest, stream eventsapi.Events_SubscribeServer) error {
	for i := 0; i < s.n; i++ {
		if err := stream.Send(&types.Envelope{Namespace: "ns", Topic: "/t", Event: &anypb.Any{TypeUrl: "x"}}); err != nil {
			return err
		}
	}
	if s.end {
		return nil
	}
	<-stream.Context().Done()
	return nil
}

func eventsClient(t *testing.T, srv *eventsServer) EventService {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "e.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	eventsapi.RegisterEventsServer(s, srv)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	c, err := New(sock, WithDefaultNamespace("ns"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.EventService()
}

func TestSubscribeEndsWithContext(t *testing.T) {
	es := eventsClient(t, &eventsServer{n: 2})
	ctx, cancel := context.WithCancel(context.Background())
	ch, errs := es.Subscribe(ctx)
	for i := 0; i < 2; i++ {
		select {
		case env := <-ch:
			if env.Topic != "/t" || env.Namespace != "ns" {
				t.Fatalf("envelope %+v", env)
			}
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
		}
	}
	cancel()
	select {
	case err, ok := <-errs:
		if ok {
			t.Fatalf("the end of the context was reported as %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("errs not closed after the context ended")
	}
}

func TestSubscribeReportsDaemonEnd(t *testing.T) {
	es := eventsClient(t, &eventsServer{n: 1, end: true})
	ch, errs := es.Subscribe(context.Background())
	<-ch
	select {
	case err := <-errs:
		if !errdefs.IsUnavailable(err) {
			t.Fatalf("the daemon ending the stream: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no error when the daemon ended the stream")
	}
	if _, ok := <-errs; ok {
		t.Fatal("errs not closed after its error")
	}
}
