//go:build integration

package integration

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventstypes "github.com/llitfkitfk/containerd/api/events"
	ttrpcevents "github.com/llitfkitfk/containerd/api/services/ttrpc/events/v1"
	"github.com/llitfkitfk/containerd/api/types"
)

// Shims forward their events over ttrpc on <address>.ttrpc; ctr events
// must see them as if the daemon had published them.
func TestTTRPCEventForwarding(t *testing.T) {
	d := newDaemon(t, "")
	d.start()

	conn, err := net.Dial("unix", d.Address+".ttrpc")
	if err != nil {
		t.Fatal(err)
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	exit, _ := proto.Marshal(&eventstypes.TaskExit{ContainerId: "c1", Id: "c1", Pid: 42, ExitStatus: 7})
	forward := func() {
		_, err := ttrpcevents.NewEventsClient(client).Forward(context.Background(), &ttrpcevents.ForwardRequest{Envelope: &types.Envelope{
			Timestamp: timestamppb.Now(),
			Namespace: "default",
			Topic:     "/tasks/exit",
			Event:     &anypb.Any{TypeUrl: "containerd.events.TaskExit", Value: exit},
		}})
		if err != nil {
			t.Fatalf("ttrpc Forward: %v", err)
		}
	}
	d.awaitEvent(func(line string) bool {
		return strings.Contains(line, "/tasks/exit") && strings.Contains(line, `"exit_status":7`)
	}, forward)
}
