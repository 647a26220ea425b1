package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	eventsapi "github.com/llitfkitfk/containerd/api/events"
	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/events"
)

// scriptedEvents hands out subscriptions the test feeds.
type scriptedEvents struct {
	subs chan subscription
}

type subscription struct {
	filters []string
	ch      chan *events.Envelope
	errs    chan error
}

func (f *scriptedEvents) Subscribe(ctx context.Context, filters ...string) (<-chan *events.Envelope, <-chan error) {
	sub := subscription{filters: filters, ch: make(chan *events.Envelope), errs: make(chan error, 1)}
	f.subs <- sub
	return sub.ch, sub.errs
}

func envelope(t *testing.T, ns, topic string, ev events.Event) *events.Envelope {
	t.Helper()
	a, err := anypb.New(ev)
	if err != nil {
		t.Fatal(err)
	}
	return &events.Envelope{Namespace: ns, Topic: topic, Event: a, Timestamp: time.Now()}
}

func waitState(t *testing.T, c *store.Container, want runtime.ContainerState) store.ContainerStatus {
	t.Helper()
	select {
	case <-c.Stopped():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not stopped; status %+v", c.Metadata.Name, c.Status())
	}
	st := c.Status()
	if st.State() != want {
		t.Fatalf("%s: state %v, want %v", c.Metadata.Name, st.State(), want)
	}
	return st
}

// The monitor records init exits (with an OOM seen before as the reason),
// ignores execs' exits and other namespaces, and after its subscription
// breaks subscribes again and catches the exits it missed meanwhile.
func TestEventMonitor(t *testing.T) {
	e := newCtrEnv(t)
	start := func(name string) *store.Container {
		id, err := e.create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.StartContainer(e.ctx, &runtime.StartContainerRequest{ContainerId: id}); err != nil {
			t.Fatal(err)
		}
		c, _ := e.s.containers.Get(id)
		return c
	}
	exits, oom, missed := start("exits"), start("oom"), start("missed")
	fe := &scriptedEvents{subs: make(chan subscription)}
	e.s.deps.Events = fe
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.s.monitorEvents(ctx)
	}()

	sub := <-fe.subs
	if len(sub.filters) != 3 {
		t.Fatalf("filters %v, want task exits, OOMs and image events of k8s.io", sub.filters)
	}
	exitOf := func(c *store.Container, id string, code uint32) *events.Envelope {
		return envelope(t, "k8s.io", "/tasks/exit", &eventsapi.TaskExit{
			ContainerId: c.Metadata.ID, Id: id, ExitStatus: code, ExitedAt: timestamppb.New(time.Unix(1000, 0)),
		})
	}
	// An exec's exit and another namespace's exit change nothing.
	sub.ch <- exitOf(exits, "exec-1", 7)
	sub.ch <- envelope(t, "default", "/tasks/exit", &eventsapi.TaskExit{ContainerId: exits.Metadata.ID, Id: exits.Metadata.ID, ExitStatus: 9})
	exitTask := func(c *store.Container, code uint32) {
		e.rt.mu.Lock()
		task := e.rt.tasks[c.Metadata.ID]
		e.rt.mu.Unlock()
		task.exitWith(code)
	}
	exitTask(exits, 2)
	sub.ch <- exitOf(exits, exits.Metadata.ID, 2)
	st := waitState(t, exits, runtime.ContainerState_CONTAINER_EXITED)
	if st.ExitCode != 2 || st.Reason != reasonError || st.FinishedAt != time.Unix(1000, 0).UnixNano() {
		t.Errorf("exit: %+v", st)
	}

	sub.ch <- envelope(t, "k8s.io", "/tasks/oom", &eventsapi.TaskOOM{ContainerId: oom.Metadata.ID})
	exitTask(oom, 137)
	sub.ch <- exitOf(oom, oom.Metadata.ID, 137)
	if st := waitState(t, oom, runtime.ContainerState_CONTAINER_EXITED); st.Reason != reasonOOMKilled || st.ExitCode != 137 {
		t.Errorf("OOM: %+v", st)
	}

	// The subscription breaks; an exit happens before the next one.
	exitTask(missed, 5)
	sub.errs <- errors.New("subscriber fell behind")
	<-fe.subs
	if st := waitState(t, missed, runtime.ContainerState_CONTAINER_EXITED); st.ExitCode != 5 {
		t.Errorf("missed exit: %+v", st)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("monitor did not end with its context")
	}
}
