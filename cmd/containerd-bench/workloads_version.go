package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	versionapi "github.com/llitfkitfk/containerd/api/services/version/v1"
)

var versionWorkload = &workload{
	name: "version",
	about: "Version round trips from parallel callers, over one shared connection and over one connection each; " +
		"goal (64 callers, 1 conn): at most 0.85 of containerd 2.x's time (ours/2.x of calls/s and p50, 1 conn, at most 0.85)",
	params: func(o options) string {
		return fmt.Sprintf("%d callers x %d calls, median of %d rounds", o.callers, o.calls, o.rounds)
	},
	measure: measureVersion,
}

// hammerTimeout bounds one hammering, so that a wedged daemon ends the
// bench instead of hanging it.
const hammerTimeout = 2 * time.Minute

func measureVersion(ctx context.Context, b *bench, d *daemon) ([]metric, error) {
	var ms []metric
	for _, shared := range []bool{true, false} {
		n, label := 1, "1 conn"
		if !shared {
			n, label = b.opts.callers, fmt.Sprintf("%d conns", b.opts.callers)
		}
		conns := make([]*grpc.ClientConn, 0, n)
		clients := make([]versionapi.VersionClient, 0, n)
		for range n {
			conn, err := d.dial()
			if err != nil {
				closeAll(conns)
				return nil, err
			}
			conns = append(conns, conn)
			clients = append(clients, versionapi.NewVersionClient(conn))
		}
		elapsed, lat, err := hammer(ctx, clients, b.opts.callers, b.opts.calls)
		closeAll(conns)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		s := summarize(lat)
		ms = append(ms,
			rate("calls/s, "+label, s.n, elapsed),
			duration("p50, "+label, s.p50),
			duration("p99, "+label, s.p99),
		)
	}
	return ms, nil
}

func closeAll(conns []*grpc.ClientConn) {
	for _, c := range conns {
		c.Close()
	}
}

// hammer has callers goroutines make calls Version calls each, caller i
// on clients[i%len(clients)], and returns the wall time of the lot and
// every call's latency. A warm-up first connects every client and lets
// both sides grow their buffers and goroutine pools; only then does the
// clock start, for all callers at once.
func hammer(ctx context.Context, clients []versionapi.VersionClient, callers, calls int) (time.Duration, []time.Duration, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, hammerTimeout, fmt.Errorf("not done within %v", hammerTimeout))
	defer cancel()
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)

	warm := min(max(calls/10, 1), 50)
	req := &emptypb.Empty{}
	lats := make([][]time.Duration, callers)
	gate := make(chan struct{})
	var warmed, done sync.WaitGroup
	for i := range callers {
		c := clients[i%len(clients)]
		warmed.Add(1)
		done.Go(func() {
			var err error
			for range warm {
				if _, err = c.Version(ctx, req); err != nil {
					break
				}
			}
			warmed.Done()
			if err != nil {
				fail(fmt.Errorf("warm-up: %w", err))
				return
			}
			select {
			case <-gate:
			case <-ctx.Done():
				return
			}
			own := make([]time.Duration, 0, calls)
			for range calls {
				t := time.Now()
				if _, err := c.Version(ctx, req); err != nil {
					fail(err)
					return
				}
				own = append(own, time.Since(t))
			}
			lats[i] = own
		})
	}
	warmed.Wait()
	t0 := time.Now()
	close(gate)
	done.Wait()
	elapsed := time.Since(t0)
	if ctx.Err() != nil {
		return 0, nil, context.Cause(ctx)
	}
	all := make([]time.Duration, 0, callers*calls)
	for _, l := range lats {
		all = append(all, l...)
	}
	return elapsed, all, nil
}
