package server

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
	rt "github.com/llitfkitfk/containerd/runtime"
	"github.com/llitfkitfk/containerd/services/tasks"
)

// deleteCountingRuntime is a runtime whose tasks are all gone; it counts
// deletes and, like the shim, refuses one while another is under way.
type deleteCountingRuntime struct {
	rt.PlatformRuntime
	deletes  atomic.Int32
	inFlight atomic.Int32
	overlaps atomic.Int32
}

func (f *deleteCountingRuntime) Delete(ctx context.Context, id string) (*rt.Exit, error) {
	if f.inFlight.Add(1) > 1 {
		f.inFlight.Add(-1)
		f.overlaps.Add(1)
		return nil, fmt.Errorf("delete %s: already being deleted: %w", id, errdefs.ErrFailedPrecondition)
	}
	defer f.inFlight.Add(-1)
	f.deletes.Add(1)
	time.Sleep(10 * time.Millisecond) // a shim round trip, for the others to collide with
	return &rt.Exit{}, nil
}

// The event monitor and a stop's own wait may handle one exit at once:
// the task is deleted once, never twice at a time, the exit recorded once
// and one CONTAINER_STOPPED event sent.
func TestHandleContainerExitOnce(t *testing.T) {
	fr := &deleteCountingRuntime{}
	s := &Service{
		deps:       Deps{Tasks: tasks.NewLocal(fr, nil, nil)},
		containers: store.New(store.ContainerKey),
		sandboxes:  store.New(store.SandboxKey),
		events:     newEventBroadcaster(),
	}
	c := testContainer(t, "c1", "sb", nil, store.ContainerStatus{CreatedAt: 1, StartedAt: 2, Pid: 42})
	if err := s.containers.Add(c); err != nil {
		t.Fatal(err)
	}
	sub := s.events.subscribe(16)

	at := time.Unix(100, 0)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(code uint32) {
			defer wg.Done()
			s.handleContainerExit(context.Background(), c, code, at, "")
		}(uint32(i + 1))
	}
	wg.Wait()

	if n := fr.deletes.Load(); n != 1 {
		t.Errorf("task deleted %d times, want once", n)
	}
	if n := fr.overlaps.Load(); n != 0 {
		t.Errorf("%d deletes overlapped another", n)
	}
	st := c.Status()
	if st.FinishedAt != at.UnixNano() || st.Pid != 0 || st.ExitCode == 0 || st.Reason != reasonError {
		t.Errorf("status %+v", st)
	}
	select {
	case <-c.Stopped():
	default:
		t.Error("Stopped not closed")
	}
	if n := len(sub.ch); n != 1 {
		t.Fatalf("%d events, want one", n)
	}
	if ev := <-sub.ch; ev.GetContainerEventType() != runtime.ContainerEventType_CONTAINER_STOPPED_EVENT || ev.GetContainerId() != "c1" {
		t.Errorf("event %v", ev)
	}
}

// An OOM seen before the exit is the exit's reason; a reason given with
// the exit (a vanished task) is kept otherwise.
func TestHandleContainerExitReasons(t *testing.T) {
	s := &Service{
		deps:       Deps{Tasks: tasks.NewLocal(&deleteCountingRuntime{}, nil, nil)},
		containers: store.New(store.ContainerKey),
		sandboxes:  store.New(store.SandboxKey),
		events:     newEventBroadcaster(),
	}
	oom := testContainer(t, "oom", "sb", nil, store.ContainerStatus{CreatedAt: 1, StartedAt: 2, Reason: reasonOOMKilled})
	s.handleContainerExit(context.Background(), oom, 137, time.Now(), "")
	if st := oom.Status(); st.Reason != reasonOOMKilled || st.ExitCode != 137 {
		t.Errorf("OOM: %+v", st)
	}
	gone := testContainer(t, "gone", "sb", nil, store.ContainerStatus{CreatedAt: 1, StartedAt: 2})
	s.handleContainerExit(context.Background(), gone, exitCodeUnknown, time.Now(), reasonUnknown)
	if st := gone.Status(); st.Reason != reasonUnknown || st.ExitCode != exitCodeUnknown {
		t.Errorf("vanished: %+v", st)
	}
	ok := testContainer(t, "ok", "sb", nil, store.ContainerStatus{CreatedAt: 1, StartedAt: 2})
	s.handleContainerExit(context.Background(), ok, 0, time.Now(), "")
	if st := ok.Status(); st.Reason != reasonCompleted || st.State() != runtime.ContainerState_CONTAINER_EXITED {
		t.Errorf("completed: %+v", st)
	}
}

// Stopping or removing a container that does not exist succeeds, as the
// CRI asks (critest's idempotence specs).
func TestStopRemoveUnknownContainer(t *testing.T) {
	s := &Service{containers: store.New(store.ContainerKey), sandboxes: store.New(store.SandboxKey), events: newEventBroadcaster()}
	if _, err := s.StopContainer(context.Background(), &runtime.StopContainerRequest{ContainerId: "nope"}); err != nil {
		t.Errorf("stop: %v", err)
	}
	if _, err := s.RemoveContainer(context.Background(), &runtime.RemoveContainerRequest{ContainerId: "nope"}); err != nil {
		t.Errorf("remove: %v", err)
	}
	if _, err := s.ContainerStatus(context.Background(), &runtime.ContainerStatusRequest{ContainerId: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("status of an unknown container: %v, want NotFound", err)
	}
}
