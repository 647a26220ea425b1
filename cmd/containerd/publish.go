package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	eventsapi "github.com/llitfkitfk/containerd/api/services/events/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/server"
)

// publishTimeout bounds the whole publish, connecting included: a shim
// waits on it.
const publishTimeout = 10 * time.Second

// publishCommand is how shims that publish through the daemon's binary
// (-publish-binary) send an event: the event, a protobuf Any, on stdin.
var publishCommand = cli.Command{
	Name:  "publish",
	Usage: "binary to publish events to containerd",
	Flags: []cli.Flag{
		cli.StringFlag{Name: "namespace", Usage: "namespace to publish to"},
		cli.StringFlag{Name: "topic", Usage: "topic of the event"},
	},
	Action: func(c *cli.Context) error {
		topic := c.String("topic")
		if topic == "" {
			return fmt.Errorf("topic required to publish event: %w", errdefs.ErrInvalidArgument)
		}
		event, err := readEvent(os.Stdin)
		if err != nil {
			return err
		}
		address := c.GlobalString("address")
		if address == "" {
			address = server.DefaultAddress
		}
		ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
		defer cancel()
		return publish(namespaces.WithNamespace(ctx, c.String("namespace")), address, topic, event)
	},
}

func readEvent(r io.Reader) (*anypb.Any, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read event: %w", err)
	}
	var event anypb.Any
	if err := proto.Unmarshal(data, &event); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	return &event, nil
}

// publish sends event to the daemon at address, which stamps it with the
// time and the namespace of ctx.
func publish(ctx context.Context, address, topic string, event *anypb.Any) error {
	if !strings.HasPrefix(address, "unix://") {
		address = "unix://" + address
	}
	conn, err := grpc.NewClient(address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	defer conn.Close()
	_, err = eventsapi.NewEventsClient(conn).Publish(ctx, &eventsapi.PublishRequest{Topic: topic, Event: event}, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("publish %s: %w", topic, errdefs.FromGRPC(err))
	}
	return nil
}
