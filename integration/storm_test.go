//go:build integration

package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	contentapi "github.com/llitfkitfk/containerd/api/services/content/v1"
	eventsapi "github.com/llitfkitfk/containerd/api/services/events/v1"
)

// stormClients is how many hostile clients the storm has, each on a
// connection of its own.
const stormClients = 1000

// stormBound is the most memory the daemon may reach in the storm. Before
// reads were bounded, each unread Content.Read pinned three of its 1 MiB
// chunks, and the storm took the daemon past 3 GiB; now it stays near
// 330 MiB, half of it garbage the collector has yet to reclaim.
const stormBound = 512 << 20

// A client can make the daemon hold memory by not reading what it asked
// for. A thousand clients, each holding an unread Content.Read of a large
// blob, an unread Events.Subscribe and an open Content.Write, keep the
// daemon within a few hundred MiB; once they are gone, nothing of them
// is left: no goroutine, no open file, no ingest lock.
func TestUnreadStreamStorm(t *testing.T) {
	d := newDaemon(t, noStartupGC)
	d.start()
	const ns = "storm"
	blob := d.ingest(ns, "blob", randomData(32<<20, 7))
	d.gcRoot(ns, blob)

	before := d.usage()
	t.Logf("before the storm: %s", before)

	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "containerd-namespace", ns))
	var conns []*grpc.ClientConn
	closeAll := func() {
		cancel()
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	}
	defer closeAll()
	for i := 0; i < stormClients; i++ {
		// A fixed window, as a client that never reads would keep it:
		// what the daemon sends past it waits in the daemon.
		conn, err := grpc.NewClient("unix://"+d.Address,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		content := contentapi.NewContentClient(conn)
		if _, err := content.Read(ctx, &contentapi.ReadContentRequest{Digest: blob.String()}); err != nil {
			t.Fatalf("client %d: read: %v", i, err)
		}
		if _, err := eventsapi.NewEventsClient(conn).Subscribe(ctx, &eventsapi.SubscribeRequest{}); err != nil {
			t.Fatalf("client %d: subscribe: %v", i, err)
		}
		w, err := content.Write(ctx)
		if err != nil {
			t.Fatalf("client %d: write: %v", i, err)
		}
		if err := w.Send(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_STAT, Ref: fmt.Sprintf("storm-%d", i)}); err != nil {
			t.Fatalf("client %d: write: %v", i, err)
		}
	}
	// Every call has reached the daemon once it holds every ingest open.
	d.waitFor(30*time.Second, "the storm's writes to be open", func() bool {
		return d.usage().files >= before.files+stormClients
	})
	// Reads fill their windows and stall; let the daemon settle there.
	time.Sleep(2 * time.Second)
	during := d.usage()
	t.Logf("during the storm of %d clients: %s", stormClients, during)
	if during.peak > stormBound {
		t.Errorf("the daemon reached %d MiB in the storm, more than %d MiB", during.peak>>20, stormBound>>20)
	}

	closeAll()
	var after usage
	d.waitFor(30*time.Second, "the storm's calls to end", func() bool {
		after = d.usage()
		return after.goroutines <= before.goroutines+5 && after.files <= before.files
	})
	t.Logf("after the storm: %s", after)
	// The blob is not held by a reader, and the ingests stay, resumable,
	// with their locks released.
	if out, err := d.ctrErr("-n", ns, "content", "rm", blob.String()); err != nil {
		t.Fatalf("content rm after the storm: %v\n%s", err, out)
	}
	content := contentapi.NewContentClient(d.grpcConn())
	for _, ref := range []string{"storm-0", fmt.Sprintf("storm-%d", stormClients-1)} {
		w, err := content.Write(apiCtx(t, ns, ""))
		if err == nil {
			err = w.Send(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_STAT, Ref: ref})
		}
		if err == nil {
			_, err = w.Recv()
		}
		if err != nil {
			t.Fatalf("reopen ingest %s after the storm: %v", ref, err)
		}
		w.CloseSend()
	}
}

// usage is what the daemon holds: memory now and at its peak, open files
// and goroutines.
type usage struct {
	rss, peak  int64
	files      int
	goroutines int
}

func (u usage) String() string {
	return fmt.Sprintf("RSS %d MiB (peak %d MiB), %d open files, %d goroutines", u.rss>>20, u.peak>>20, u.files, u.goroutines)
}

// usage reads the daemon's from /proc and its debug socket.
func (d *daemon) usage() usage {
	d.t.Helper()
	pid := d.Cmd.Process.Pid
	var u usage
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		d.t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		key, value, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		switch key {
		case "VmRSS":
			u.rss = kb << 10
		case "VmHWM":
			u.peak = kb << 10
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		d.t.Fatal(err)
	}
	u.files = len(fds)
	u.goroutines = d.goroutines()
	return u
}

// goroutines counts the daemon's goroutines through its debug socket.
func (d *daemon) goroutines() int {
	d.t.Helper()
	client := http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.Debug)
		},
	}, Timeout: 10 * time.Second}
	resp, err := client.Get("http://debug/debug/pprof/goroutine?debug=1")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	// The first line is "goroutine profile: total N".
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil && err != io.EOF {
		d.t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "goroutine profile: total")))
	if err != nil {
		d.t.Fatalf("goroutine profile starts %q", line)
	}
	return n
}

// waitFor polls cond until it holds, failing the test after timeout.
func (d *daemon) waitFor(timeout time.Duration, what string, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			d.t.Fatalf("gave up waiting for %s after %v", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
