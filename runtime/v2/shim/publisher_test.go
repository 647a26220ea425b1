package shim

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	eventsapi "github.com/llitfkitfk/containerd/api/events"
	"github.com/llitfkitfk/containerd/api/types"
	"github.com/llitfkitfk/containerd/internal/testutil/ttrpcevents"
	"github.com/llitfkitfk/containerd/namespaces"
)

func closePublisher(t *testing.T, p *RemotePublisher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Errorf("close publisher: %v", err)
	}
}

func containerOf(t *testing.T, env *types.Envelope) string {
	t.Helper()
	if env.Event.GetTypeUrl() != "containerd.events.TaskCreate" {
		t.Fatalf("event type URL %q, want the bare containerd.events.TaskCreate", env.Event.GetTypeUrl())
	}
	var ev eventsapi.TaskCreate
	if err := proto.Unmarshal(env.Event.GetValue(), &ev); err != nil {
		t.Fatal(err)
	}
	return ev.ContainerId
}

func TestPublisherForwardsInOrder(t *testing.T) {
	events := ttrpcevents.Serve(t, filepath.Join(t.TempDir(), "events.ttrpc"))
	p := NewPublisher(PublisherOpts{Namespace: "ns1", TTRPCAddress: "unix://" + events.Path})
	const n = 100
	for i := range n {
		ctx := context.Background()
		if i == n-1 {
			ctx = namespaces.WithNamespace(ctx, "other")
		}
		if err := p.Publish(ctx, "/tasks/create", &eventsapi.TaskCreate{ContainerId: fmt.Sprint("c", i)}); err != nil {
			t.Fatal(err)
		}
	}
	closePublisher(t, p)
	got := events.Events()
	if len(got) != n {
		t.Fatalf("%d events forwarded, want %d", len(got), n)
	}
	for i, f := range got {
		wantNS := "ns1"
		if i == n-1 {
			wantNS = "other"
		}
		if c := containerOf(t, f.Envelope); c != fmt.Sprint("c", i) {
			t.Fatalf("event %d is %s: out of order", i, c)
		}
		if f.Envelope.Namespace != wantNS || f.MetadataNS != wantNS || f.Envelope.Topic != "/tasks/create" || f.Envelope.Timestamp == nil {
			t.Errorf("event %d: %v, metadata namespace %q; want namespace %s", i, f.Envelope, f.MetadataNS, wantNS)
		}
	}
	if err := p.Publish(context.Background(), "/tasks/create", &eventsapi.TaskCreate{}); err == nil {
		t.Error("a closed publisher took an event")
	}
}

// TestPublisherSurvivesDaemonRestart: events published while the daemon
// is away are delivered, in order, once it is back.
func TestPublisherSurvivesDaemonRestart(t *testing.T) {
	events := ttrpcevents.Serve(t, filepath.Join(t.TempDir(), "events.ttrpc"))
	p := NewPublisher(PublisherOpts{Namespace: "ns1", TTRPCAddress: events.Path})
	defer closePublisher(t, p)
	publish := func(id string) {
		if err := p.Publish(context.Background(), "/tasks/create", &eventsapi.TaskCreate{ContainerId: id}); err != nil {
			t.Fatal(err)
		}
	}
	publish("before")
	events.WaitFor(1, 5*time.Second)

	events.Stop()
	start := time.Now()
	publish("during1")
	publish("during2")
	time.Sleep(500 * time.Millisecond)
	if n := len(events.Events()); n != 1 {
		t.Fatalf("%d events with the daemon away", n)
	}
	events.Start()
	got := events.WaitFor(3, 10*time.Second)
	if len(got) != 3 {
		t.Fatalf("%d events, want 3", len(got))
	}
	for i, want := range []string{"before", "during1", "during2"} {
		if c := containerOf(t, got[i].Envelope); c != want {
			t.Errorf("event %d is %s, want %s", i, c, want)
		}
	}
	if got[1].ServerIndex != 2 || got[2].ServerIndex != 2 {
		t.Errorf("events published while away reached server %d, %d; want the restarted one", got[1].ServerIndex, got[2].ServerIndex)
	}
	t.Logf("delivered %v after the daemon went away", time.Since(start))
}

// TestPublisherDropsRefusedEvent: an event the daemon refuses is dropped
// at once, and the next one delivered.
func TestPublisherDropsRefusedEvent(t *testing.T) {
	events := ttrpcevents.Serve(t, filepath.Join(t.TempDir(), "events.ttrpc"))
	events.Refuse = func(env *types.Envelope) error {
		if env.Topic == "/bad" {
			return status.Error(codes.InvalidArgument, "bad topic")
		}
		return nil
	}
	p := NewPublisher(PublisherOpts{Namespace: "ns1", TTRPCAddress: events.Path})
	p.Publish(context.Background(), "/bad", &eventsapi.TaskCreate{ContainerId: "bad"})
	p.Publish(context.Background(), "/tasks/create", &eventsapi.TaskCreate{ContainerId: "good"})
	got := events.WaitFor(1, 2*time.Second)
	if c := containerOf(t, got[0].Envelope); c != "good" {
		t.Errorf("delivered %s", c)
	}
	closePublisher(t, p)
}

// TestPublisherCloseDeadline: with no daemon to take them, Close gives up
// on queued events at its deadline and says so.
func TestPublisherCloseDeadline(t *testing.T) {
	p := NewPublisher(PublisherOpts{Namespace: "ns1", TTRPCAddress: filepath.Join(t.TempDir(), "nobody")})
	p.Publish(context.Background(), "/tasks/create", &eventsapi.TaskCreate{ContainerId: "c"})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "1 events not delivered") {
		t.Errorf("close: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("close took %v past a 300ms deadline", d)
	}
}

// publishScript is a fake daemon binary for `publish`: the first run
// fails, as with a daemon that is away; later runs record their
// arguments and stdin.
func publishScript(t *testing.T) (path, dir string) {
	dir = t.TempDir()
	path = filepath.Join(dir, "containerd")
	script := fmt.Sprintf(`#!/bin/sh
d=%q
if [ ! -e "$d/failed" ]; then touch "$d/failed"; echo "daemon away" >&2; exit 1; fi
n=$(ls "$d" | grep -c '^args')
echo "$@" > "$d/args.$n"
cat > "$d/stdin.$n"
`, dir)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, dir
}

func TestPublisherPublishBinary(t *testing.T) {
	bin, dir := publishScript(t)
	p := NewPublisher(PublisherOpts{Namespace: "ns1", PublishBinary: bin, Address: "/run/d/d.sock"})
	for _, id := range []string{"c0", "c1"} {
		if err := p.Publish(context.Background(), "/tasks/create", &eventsapi.TaskCreate{ContainerId: id}); err != nil {
			t.Fatal(err)
		}
	}
	closePublisher(t, p)
	for i, id := range []string{"c0", "c1"} {
		args, err := os.ReadFile(filepath.Join(dir, fmt.Sprint("args.", i)))
		if err != nil {
			t.Fatalf("event %d was not published (the failed first run is retried): %v", i, err)
		}
		if want := "--address /run/d/d.sock publish --topic /tasks/create --namespace ns1"; strings.TrimSpace(string(args)) != want {
			t.Errorf("publish arguments %q, want %q", args, want)
		}
		data, _ := os.ReadFile(filepath.Join(dir, fmt.Sprint("stdin.", i)))
		var a anypb.Any
		if err := proto.Unmarshal(data, &a); err != nil {
			t.Fatalf("stdin is no Any: %v", err)
		}
		if c := containerOf(t, &types.Envelope{Event: &a}); c != id {
			t.Errorf("event %d is %s, want %s", i, c, id)
		}
	}
}

// TestPublisherBinaryReapedElsewhere: a task service's reaper may take the
// publish binary's exit status; the run counts as done, not as a failure
// to retry.
func TestPublisherBinaryReapedElsewhere(t *testing.T) {
	bin, _ := publishScript(t)
	p := NewPublisher(PublisherOpts{Namespace: "ns1", PublishBinary: bin})
	runs := make(chan struct{}, 10)
	p.setCommandRunner(func(cmd *exec.Cmd) error {
		runs <- struct{}{}
		cmd.Run()
		return &os.SyscallError{Syscall: "wait", Err: syscall.ECHILD}
	})
	p.Publish(context.Background(), "/tasks/create", &eventsapi.TaskCreate{ContainerId: "c"})
	closePublisher(t, p)
	if len(runs) != 1 {
		t.Errorf("the publish binary ran %d times, want once", len(runs))
	}
}
