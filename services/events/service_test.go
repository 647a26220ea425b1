package events

import (
	"context"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventstypes "github.com/llitfkitfk/containerd/api/events"
	api "github.com/llitfkitfk/containerd/api/services/events/v1"
	"github.com/llitfkitfk/containerd/events/exchange"
	"github.com/llitfkitfk/containerd/internal/testutil"
)

func setup(t *testing.T) (*exchange.Exchange, api.EventsClient) {
	ex := exchange.NewExchange()
	svc := &service{events: ex, stop: make(chan struct{})}
	return ex, api.NewEventsClient(testutil.Serve(t, svc.Register))
}

// A filter that does not parse ends the subscription with InvalidArgument,
// every time: the subscription fails at once, and its end and the reason
// reach the service together.
func TestSubscribeMalformedFilter(t *testing.T) {
	_, c := setup(t)
	for i := 0; i < 200; i++ {
		stream, err := c.Subscribe(context.Background(), &api.SubscribeRequest{Filters: []string{"name=="}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("try %d: Recv = %v, want InvalidArgument", i, err)
		}
	}
}

func TestSubscribeDelivers(t *testing.T) {
	ex, c := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := c.Subscribe(ctx, &api.SubscribeRequest{Filters: []string{`topic=="/images/create"`}})
	if err != nil {
		t.Fatal(err)
	}
	// The subscription is on the exchange once the first publish after
	// it reaches the stream; publish until one does.
	got := make(chan error, 1)
	go func() {
		env, err := stream.Recv()
		if err == nil && (env.Topic != "/images/create" || env.Namespace != "ns") {
			err = io.ErrUnexpectedEOF
		}
		got <- err
	}()
	for {
		ex.Publish(testutil.NS("ns"), "/images/delete", &eventstypes.ImageDelete{Name: "x"})
		ex.Publish(testutil.NS("ns"), "/images/create", &eventstypes.ImageCreate{Name: "x"})
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}
