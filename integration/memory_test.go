//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	eventsapi "github.com/llitfkitfk/containerd/api/services/events/v1"
	namespacesapi "github.com/llitfkitfk/containerd/api/services/namespaces/v1"
	versionapi "github.com/llitfkitfk/containerd/api/services/version/v1"
)

// What a connection leaves behind once closed is counted in goroutines,
// which are exact, rather than in memory, which moves with the collector's
// timing: whatever a connection or call keeps alive (its transport, its
// handler, a buffer it waits on) keeps a goroutine too. The live heap is
// checked as well, after forced collections, with room for the noise: a
// leak of a kilobyte per connection is past it.
const (
	goroutineSlack = 5
	heapSlack      = 4 << 20
)

// Thousands of clients connect, make a call and go, some politely, some
// by dropping the connection mid-handshake or mid-call. Afterwards the
// daemon holds what it held before: no goroutine, no open file, no heap.
func TestConnectionStormLeavesNothing(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	const ns = "storm"
	ctx := metadata.AppendToOutgoingContext(context.Background(), "containerd-namespace", ns)
	// A first round, so that what is made once (the workers, lazily
	// initialised tables) is in the baseline.
	stormOnce(t, d, ctx, 64)
	before := d.settled()
	t.Logf("before the storm: %s, live heap %d KiB", before.usage, before.heap>>10)

	const clients = 3000
	stormOnce(t, d, ctx, clients)

	after := d.settleTo(before, "the storm's connections")
	t.Logf("after %d clients: %s, live heap %d KiB", clients, after.usage, after.heap>>10)
	if after.heap > before.heap+heapSlack {
		t.Errorf("the live heap grew from %d KiB to %d KiB over the storm", before.heap>>10, after.heap>>10)
	}
}

// stormOnce runs n clients, 64 at a time, each on a connection of its own.
// Three in four make a call (Version, or a namespace list, which reads
// the database) and close; the rest hang up while the daemon waits for
// them: after the preface, mid-call, or with a call cancelled.
func stormOnce(t *testing.T, d *daemon, ctx context.Context, n int) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		slots = make(chan struct{}, 64)
		mu    sync.Mutex
		fail  error
	)
	for i := range n {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			if err := stormClient(d, ctx, i); err != nil {
				mu.Lock()
				fail = fmt.Errorf("client %d: %w", i, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if fail != nil {
		t.Fatal(fail)
	}
}

func stormClient(d *daemon, ctx context.Context, i int) error {
	switch i % 4 {
	case 3:
		// A bare connection: the HTTP/2 preface, then gone.
		c, err := net.Dial("unix", d.Address)
		if err != nil {
			return err
		}
		io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
		return c.Close()
	}
	conn, err := grpc.NewClient("unix://"+d.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch i % 4 {
	case 0:
		_, err = versionapi.NewVersionClient(conn).Version(cctx, &emptypb.Empty{})
	case 1:
		_, err = namespacesapi.NewNamespacesClient(conn).List(cctx, &namespacesapi.ListNamespacesRequest{})
	case 2:
		// A subscription, opened and then abandoned with the connection.
		// The call after it on the same connection reaches the daemon
		// after it, so the subscription is there, or on its way, when
		// the connection goes.
		if _, err = eventsapi.NewEventsClient(conn).Subscribe(cctx, &eventsapi.SubscribeRequest{}); err == nil {
			_, err = versionapi.NewVersionClient(conn).Version(cctx, &emptypb.Empty{})
		}
	}
	return err
}

// A subscriber that never reads while thousands of events are published
// is dropped, with a line in the log that says so, and never slows the
// publishers or the subscribers that keep up. Once its client goes, the
// daemon holds nothing of it.
func TestAbandonedSubscriberIsDropped(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	const ns = "subscribers"
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "containerd-namespace", ns))
	defer cancel()
	publisher := eventsapi.NewEventsClient(d.grpcConn())
	publish := func(topic string, i int) error {
		ev, err := anypb.New(wrapperspb.String(fmt.Sprint(i)))
		if err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		_, err = publisher.Publish(pctx, &eventsapi.PublishRequest{Topic: topic, Event: ev})
		return err
	}
	if err := publish("/warm", 0); err != nil {
		t.Fatal(err)
	}
	before := d.settled()
	t.Logf("before: %s, live heap %d KiB", before.usage, before.heap>>10)

	// The abandoned subscriber: a fixed, small window, as a client that
	// never reads keeps it, so that what the daemon sends waits there.
	abandonedConn, err := grpc.NewClient("unix://"+d.Address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer abandonedConn.Close()
	abandoned, err := eventsapi.NewEventsClient(abandonedConn).Subscribe(ctx, &eventsapi.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// A subscriber that keeps up, and must see the last event.
	liveConn, err := grpc.NewClient("unix://"+d.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer liveConn.Close()
	live, err := eventsapi.NewEventsClient(liveConn).Subscribe(ctx, &eventsapi.SubscribeRequest{
		Filters: []string{`topic=="/done"`, `topic=="/ready"`},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Each subscription is in place once it has had an event; until
	// then, events go by it.
	for _, sub := range []eventsapi.Events_SubscribeClient{abandoned, live} {
		got := make(chan error, 1)
		go func() { _, err := sub.Recv(); got <- err }()
		for ready := false; !ready; {
			if err := publish("/ready", 0); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-got:
				if err != nil {
					t.Fatal(err)
				}
				ready = true
			case <-time.After(100 * time.Millisecond):
			}
		}
	}

	// Far more events than the subscriber's queue, its window and the
	// daemon's send buffer hold, from 8 publishers at once; each call is
	// bounded, so a publisher held up by the subscriber fails the test.
	const events = 6000
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for p := range 8 {
		wg.Go(func() {
			for i := p; i < events; i += 8 {
				if err := publish("/spam", i); err != nil {
					errs <- fmt.Errorf("publish %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a publisher was held up: %v", err)
	}
	if err := publish("/done", events); err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := live.Recv()
		if err != nil {
			t.Fatalf("the subscriber that keeps up: %v", err)
		}
		if ev.Topic == "/done" {
			break
		}
	}

	// The clients go; nothing of them may stay.
	abandonedConn.Close()
	liveConn.Close()
	after := d.settleTo(before, "the abandoned subscription")
	t.Logf("after %d events and the subscriber gone: %s, live heap %d KiB", events, after.usage, after.heap>>10)
	if after.heap > before.heap+heapSlack {
		t.Errorf("the live heap grew from %d KiB to %d KiB", before.heap>>10, after.heap>>10)
	}

	// The log is read once the daemon has stopped and written it all.
	cancel()
	d.kill()
	logged := d.log.String()
	if n := strings.Count(logged, "dropped an event subscriber that stopped reading"); n != 1 {
		t.Errorf("the dropped subscriber was logged %d times, want once; daemon log:\n%s", n, logged)
	}
}

// settleTo waits until the daemon has no more goroutines (give or take a
// few) and open files than before, and fails the test with its goroutines'
// stacks if that does not happen within a minute.
func (d *daemon) settleTo(before settledUsage, what string) settledUsage {
	d.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		now := d.settled()
		if now.goroutines <= before.goroutines+goroutineSlack && now.files <= before.files {
			return now
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s left %d goroutines and %d open files behind (before: %s; now: %s); goroutines:\n%s",
				what, now.goroutines-before.goroutines, now.files-before.files, before.usage, now.usage,
				d.debugGet("/debug/pprof/goroutine?debug=1"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// settledUsage is usage with the live heap after forced collections.
type settledUsage struct {
	usage
	heap uint64
}

// settled collects garbage twice (what sat in sync.Pools through the first
// goes in the second), then reads the live heap and the daemon's usage.
func (d *daemon) settled() settledUsage {
	d.t.Helper()
	d.debugGet("/debug/pprof/heap?gc=1")
	d.debugGet("/debug/pprof/heap?gc=1")
	var vars struct {
		MemStats struct{ HeapAlloc uint64 } `json:"memstats"`
	}
	if err := json.Unmarshal(d.debugGet("/debug/vars"), &vars); err != nil {
		d.t.Fatal(err)
	}
	return settledUsage{usage: d.usage(), heap: vars.MemStats.HeapAlloc}
}

// debugGet fetches path from the daemon's debug socket.
func (d *daemon) debugGet(path string) []byte {
	d.t.Helper()
	// One connection per request, closed after it: a connection kept
	// alive would be counted against the daemon.
	client := http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.Debug)
		},
		DisableKeepAlives: true,
	}, Timeout: 10 * time.Second}
	resp, err := client.Get("http://debug" + path)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		d.t.Fatal(err)
	}
	return b
}
