package exchange

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/namespaces"
)

const timeout = 10 * time.Second

func receive(t *testing.T, ch <-chan *events.Envelope) *events.Envelope {
	t.Helper()
	select {
	case env, ok := <-ch:
		if !ok {
			t.Fatal("event channel closed")
		}
		return env
	case <-time.After(timeout):
		t.Fatal("timed out waiting for an event")
	}
	return nil
}

// finished waits for a subscription to end and returns the error it ended
// with, checking that both channels are closed.
func finished(t *testing.T, ch <-chan *events.Envelope, errs <-chan error) error {
	t.Helper()
	var err error
	select {
	case err = <-errs:
	case <-time.After(timeout):
		t.Fatal("timed out waiting for the subscription to end")
	}
	if e, ok := <-errs; ok {
		t.Fatalf("second error %v, want errs closed", e)
	}
	for range ch {
		// Envelopes queued before the end may still be handed over only
		// if they were being delivered; drain until closed.
	}
	return err
}

func waitSubscribers(t *testing.T, e *Exchange, n int64) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for e.subscribers.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers, want %d", e.subscribers.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func value(t *testing.T, env *events.Envelope) string {
	t.Helper()
	m, err := events.UnmarshalEvent(env.Event)
	if err != nil {
		t.Fatal(err)
	}
	return m.(*wrapperspb.StringValue).GetValue()
}

func TestPublishSubscribe(t *testing.T) {
	e := NewExchange()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, errs := e.Subscribe(ctx)

	before := time.Now()
	pctx := namespaces.WithNamespace(context.Background(), "ns1")
	if err := e.Publish(pctx, "/test/topic", wrapperspb.String("hello")); err != nil {
		t.Fatal(err)
	}

	env := receive(t, ch)
	if env.Namespace != "ns1" || env.Topic != "/test/topic" {
		t.Errorf("got namespace %q topic %q", env.Namespace, env.Topic)
	}
	if env.Timestamp.Before(before) || env.Timestamp.After(time.Now()) || env.Timestamp.Location() != time.UTC {
		t.Errorf("timestamp %v not the UTC time of publishing", env.Timestamp)
	}
	if env.Event.GetTypeUrl() != "google.protobuf.StringValue" {
		t.Errorf("type URL %q, want the bare message name", env.Event.GetTypeUrl())
	}
	if v := value(t, env); v != "hello" {
		t.Errorf("event %q", v)
	}

	cancel()
	if err := finished(t, ch, errs); err != nil {
		t.Errorf("canceled subscription ended with %v, want no error", err)
	}
	waitSubscribers(t, e, 0)
}

func TestSubscribeFilters(t *testing.T) {
	e := NewExchange()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	subs := map[string][]string{
		"topic==/x":                  {"ns1 /x", "ns2 /x"},
		"namespace==ns2":             {"ns2 /x", "ns2 /namespaces/create"},
		"topic~=^/namespaces/":       {"ns1 /namespaces/create", "ns2 /namespaces/create"},
		`event.value=="ns1 /x"`:      {"ns1 /x"},
		"topic==/y | namespace==ns1": {"ns1 /x", "ns1 /namespaces/create"},
	}
	chans := map[string]<-chan *events.Envelope{}
	for f := range subs {
		chans[f], _ = e.Subscribe(ctx, f)
	}
	// Several filters are ORed.
	chans["or"], _ = e.Subscribe(ctx, "topic==/nothing", "namespace==ns1")
	subs["or"] = []string{"ns1 /x", "ns1 /namespaces/create"}

	for _, ns := range []string{"ns1", "ns2"} {
		for _, topic := range []string{"/x", "/namespaces/create"} {
			pctx := namespaces.WithNamespace(context.Background(), ns)
			if err := e.Publish(pctx, topic, wrapperspb.String(ns+" "+topic)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for f, want := range subs {
		for _, w := range want {
			if got := value(t, receive(t, chans[f])); got != w {
				t.Errorf("%s: got %q, want %q", f, got, w)
			}
		}
	}
	time.Sleep(50 * time.Millisecond)
	for f, ch := range chans {
		select {
		case env := <-ch:
			t.Errorf("%s: unexpected %q", f, value(t, env))
		default:
		}
	}
}

func TestSubscribeBadFilter(t *testing.T) {
	e := NewExchange()
	ch, errs := e.Subscribe(context.Background(), "topic==/x", "name~=[")
	err := finished(t, ch, errs)
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("got %v, want invalid argument", err)
	}
	if e.subscribers.Load() != 0 {
		t.Error("a subscription that failed to parse was added")
	}
}

func TestSubscribeDeadline(t *testing.T) {
	e := NewExchange()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	ch, errs := e.Subscribe(ctx)
	if err := finished(t, ch, errs); !errdefs.IsDeadlineExceeded(err) {
		t.Errorf("got %v, want the deadline error", err)
	}
	waitSubscribers(t, e, 0)
}

func TestPublishErrors(t *testing.T) {
	e := NewExchange()
	ctx := namespaces.WithNamespace(context.Background(), "ns")
	for _, topic := range []string{"", "x", "/", "/x/", "//x", "/x//y", "/x/-y", "/x y", "/x/" + string(make([]byte, 80))} {
		if err := e.Publish(ctx, topic, wrapperspb.String("")); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Publish on %q: got %v, want invalid argument", topic, err)
		}
	}
	if err := e.Publish(context.Background(), "/x", wrapperspb.String("")); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Publish without namespace: got %v, want failed precondition", err)
	}
	if err := e.Publish(namespaces.WithNamespace(ctx, "bad/ns"), "/x", wrapperspb.String("")); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Publish in a bad namespace: got %v, want invalid argument", err)
	}
	if err := e.Publish(ctx, "/x", nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Publish of nil: got %v, want invalid argument", err)
	}
	for _, topic := range []string{"/x", "/tasks/exit", "/a.b/c_d/e-f/0"} {
		if err := e.Publish(ctx, topic, wrapperspb.String("")); err != nil {
			t.Errorf("Publish on %q: %v", topic, err)
		}
	}
}

func TestForward(t *testing.T) {
	e := NewExchange()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, _ := e.Subscribe(ctx, "namespace==shim")

	ev, err := events.MarshalEvent(wrapperspb.String("forwarded"))
	if err != nil {
		t.Fatal(err)
	}
	stamp := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	env := &events.Envelope{Timestamp: stamp, Namespace: "shim", Topic: "/tasks/exit", Event: ev}
	if err := e.Forward(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	got := receive(t, ch)
	if !got.Timestamp.Equal(stamp) || got.Namespace != "shim" || got.Topic != "/tasks/exit" || !proto.Equal(got.Event, ev) {
		t.Errorf("forwarded %+v, received %+v", env, got)
	}

	for name, bad := range map[string]*events.Envelope{
		"nil":          nil,
		"no namespace": {Timestamp: stamp, Topic: "/x", Event: ev},
		"bad topic":    {Timestamp: stamp, Namespace: "ns", Topic: "x", Event: ev},
		"no event":     {Timestamp: stamp, Namespace: "ns", Topic: "/x"},
		"no timestamp": {Namespace: "ns", Topic: "/x", Event: ev},
	} {
		if err := e.Forward(context.Background(), bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Forward %s: got %v, want invalid argument", name, err)
		}
	}
}

func TestStalledSubscriber(t *testing.T) {
	e := NewExchange()
	var logged bytes.Buffer
	logger := logrus.New()
	logger.SetOutput(&logged)
	ctx, cancel := context.WithCancel(log.WithLogger(context.Background(), logrus.NewEntry(logger)))
	defer cancel()
	ch, errs := e.Subscribe(ctx) // never read
	live, liveErrs := e.Subscribe(ctx, "topic==/done")

	pctx := namespaces.WithNamespace(context.Background(), "ns")
	published := make(chan error, 1)
	go func() {
		for i := range 10000 {
			if err := e.Publish(pctx, "/spam", wrapperspb.String(fmt.Sprint(i))); err != nil {
				published <- err
				return
			}
		}
		published <- e.Publish(pctx, "/done", wrapperspb.String("done"))
	}()
	select {
	case err := <-published:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(timeout):
		t.Fatal("publishing was blocked by a subscriber that does not read")
	}

	if err := finished(t, ch, errs); !errdefs.IsUnavailable(err) {
		t.Errorf("stalled subscriber ended with %v, want unavailable", err)
	}
	// The operator learns of it, once: the log is written before the
	// error is sent, which finished has received.
	if n := strings.Count(logged.String(), "dropped an event subscriber that stopped reading"); n != 1 {
		t.Errorf("the drop was logged %d times, want once:\n%s", n, logged.String())
	}
	// The others are unaffected.
	if v := value(t, receive(t, live)); v != "done" {
		t.Errorf("live subscriber got %q", v)
	}
	select {
	case err := <-liveErrs:
		t.Errorf("live subscriber ended with %v", err)
	default:
	}
	waitSubscribers(t, e, 1)
}

func TestSlowSubscriberSmallQueue(t *testing.T) {
	e := NewExchange(WithQueueSize(4))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, errs := e.Subscribe(ctx)

	pctx := namespaces.WithNamespace(context.Background(), "ns")
	// One may be held by the delivering goroutine, four queued, and the
	// next overflows.
	for i := range 6 {
		if err := e.Publish(pctx, "/x", wrapperspb.String(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := finished(t, ch, errs); !errdefs.IsUnavailable(err) {
		t.Errorf("got %v, want unavailable", err)
	}
	waitSubscribers(t, e, 0)
}

func TestCanceledSubscriptionsAreRemoved(t *testing.T) {
	e := NewExchange(WithQueueSize(1))
	pctx := namespaces.WithNamespace(context.Background(), "ns")
	start := runtime.NumGoroutine()

	for range 100 {
		ctx, cancel := context.WithCancel(context.Background())
		ch, errs := e.Subscribe(ctx)
		if err := e.Publish(pctx, "/x", wrapperspb.String("x")); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := finished(t, ch, errs); err != nil && !errdefs.IsUnavailable(err) {
			t.Fatal(err)
		}
	}
	waitSubscribers(t, e, 0)

	// Publishing with every subscriber gone still works, and nothing is
	// left running for them.
	for range 10 {
		if err := e.Publish(pctx, "/x", wrapperspb.String("x")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(timeout)
	for runtime.NumGoroutine() > start+2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, started with %d", runtime.NumGoroutine(), start)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConcurrentPublishers(t *testing.T) {
	const publishers, perPublisher, subscribers = 8, 200, 8
	e := NewExchange(WithQueueSize(publishers * perPublisher))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var wg sync.WaitGroup
	results := make(chan error, subscribers)
	for range subscribers {
		ch, errs := e.Subscribe(ctx)
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := make(map[string]int) // per-publisher order must hold
			for n := 0; n < publishers*perPublisher; n++ {
				var env *events.Envelope
				select {
				case env = <-ch:
				case err := <-errs:
					results <- fmt.Errorf("subscription ended: %v", err)
					return
				case <-time.After(timeout):
					results <- fmt.Errorf("timed out after %d events", n)
					return
				}
				m, err := events.UnmarshalEvent(env.Event)
				if err != nil {
					results <- err
					return
				}
				var p string
				var i int
				fmt.Sscanf(m.(*wrapperspb.StringValue).GetValue(), "%s %d", &p, &i)
				if i != next[p] {
					results <- fmt.Errorf("publisher %s: got %d, want %d", p, i, next[p])
					return
				}
				next[p]++
			}
			results <- nil
		}()
	}

	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx := namespaces.WithNamespace(context.Background(), "ns")
			for i := range perPublisher {
				if err := e.Publish(pctx, "/x", wrapperspb.String(fmt.Sprintf("p%d %d", p, i))); err != nil {
					results <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Error(err)
		}
	}
}

func BenchmarkPublish(b *testing.B) {
	e := NewExchange()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, f := range []string{"", "topic==/bench", "namespace==other", `topic~=^/be,namespace==ns`} {
		var fs []string
		if f != "" {
			fs = []string{f}
		}
		ch, _ := e.Subscribe(ctx, fs...)
		go func() {
			for range ch {
			}
		}()
	}
	pctx := namespaces.WithNamespace(context.Background(), "ns")
	ev, err := anypb.New(wrapperspb.String("bench"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Publish(pctx, "/bench", ev); err != nil {
			b.Fatal(err)
		}
	}
}
