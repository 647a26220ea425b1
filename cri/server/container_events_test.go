package server

import (
	"context"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func ev(id string) *runtime.ContainerEventResponse {
	return &runtime.ContainerEventResponse{ContainerId: id}
}

// A subscriber that never reads is dropped once its buffer is full, while
// emit goes on without blocking and a reading subscriber gets every event
// in order.
func TestBroadcasterDropsSlowSubscriber(t *testing.T) {
	b := newEventBroadcaster()
	slow := b.subscribe(4)
	fast := b.subscribe(4)

	const n = 100
	var got []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for e := range fast.ch {
			got = append(got, e.GetContainerId())
			if len(got) == n {
				return
			}
		}
	}()
	for i := 0; i < n; i++ {
		// The fast reader may lag a little behind; emit never waits for
		// it, so give it room by emitting only when its queue has space.
		for len(fast.ch) == cap(fast.ch) {
		}
		b.emit(ev(string(rune('a' + i%26))))
	}
	wg.Wait()

	select {
	case <-slow.dropped:
	default:
		t.Fatal("slow subscriber was not dropped")
	}
	select {
	case <-fast.dropped:
		t.Fatal("fast subscriber was dropped")
	default:
	}
	if len(got) != n {
		t.Fatalf("fast subscriber got %d events, want %d", len(got), n)
	}
	for i, id := range got {
		if want := string(rune('a' + i%26)); id != want {
			t.Fatalf("event %d is %q, want %q", i, id, want)
		}
	}
	if len(slow.ch) != 4 {
		t.Fatalf("slow subscriber holds %d events, want its 4 first", len(slow.ch))
	}
	b.mu.Lock()
	_, stillSubscribed := b.subs[slow]
	b.mu.Unlock()
	if stillSubscribed {
		t.Fatal("dropped subscriber is still subscribed")
	}
}

// serve sends what is queued, then ends with ResourceExhausted once the
// stream has been dropped; it ends cleanly when its context ends, and
// unsubscribes either way.
func TestBroadcasterServe(t *testing.T) {
	b := newEventBroadcaster()

	// A stream whose send blocks until released: it falls behind.
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var sent int
	errc := make(chan error, 1)
	go func() {
		errc <- b.serve(context.Background(), func(*runtime.ContainerEventResponse) error {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
			sent++
			return nil
		})
	}()
	// Wait for the subscription and for the first event to be in send,
	// then overflow the queue behind it.
	for {
		b.mu.Lock()
		n := len(b.subs)
		b.mu.Unlock()
		if n == 1 {
			break
		}
	}
	b.emit(ev("first"))
	<-entered
	for i := 0; i < eventBufferSize+1; i++ {
		b.emit(ev("x"))
	}
	close(release)
	err := <-errc
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("dropped stream ended with %v, want ResourceExhausted", err)
	}
	// The first event was taken before the overflow; all that was queued
	// then went out before the drop was reported.
	if sent != eventBufferSize+1 {
		t.Fatalf("sent %d events before the drop, want %d", sent, eventBufferSize+1)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.serve(ctx, func(*runtime.ContainerEventResponse) error { return nil }) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve after cancel: %v", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.subs) != 0 {
		t.Fatalf("%d subscribers left after their streams ended", len(b.subs))
	}
}
