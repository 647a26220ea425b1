//go:build integration

package integration

import (
	"bufio"
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

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

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	events := exec.CommandContext(ctx, "ctr", "-a", d.address, "events")
	stdout, _ := events.StdoutPipe()
	if err := events.Start(); err != nil {
		t.Fatal(err)
	}
	defer events.Wait()
	defer cancel()
	lines := make(chan string)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()

	conn, err := net.Dial("unix", d.address+".ttrpc")
	if err != nil {
		t.Fatal(err)
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	exit, _ := proto.Marshal(&eventstypes.TaskExit{ContainerId: "c1", Id: "c1", Pid: 42, ExitStatus: 7})
	forward := func() {
		_, err := ttrpcevents.NewEventsClient(client).Forward(ctx, &ttrpcevents.ForwardRequest{Envelope: &types.Envelope{
			Timestamp: timestamppb.Now(),
			Namespace: "default",
			Topic:     "/tasks/exit",
			Event:     &anypb.Any{TypeUrl: "containerd.events.TaskExit", Value: exit},
		}})
		if err != nil {
			t.Fatalf("ttrpc Forward: %v", err)
		}
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("ctr events ended")
			}
			if strings.Contains(line, "/tasks/exit") && strings.Contains(line, `"exit_status":7`) {
				return
			}
		case <-tick.C:
			forward() // until ctr's subscription is in place
		case <-ctx.Done():
			t.Fatalf("forwarded event never reached ctr events\n%s", d.log)
		}
	}
}
