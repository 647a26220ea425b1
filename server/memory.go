package server

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/llitfkitfk/containerd/log"
)

// The daemon works in bursts (an image import, a pod start) with long idle
// spells between them. After a burst, the Go runtime keeps what the burst
// used: garbage until the heap next reaches twice its live size, which an
// idle daemon does not, then free spans returned to the system only slowly
// by its background scavenger, and the buffers left in sync.Pools (gRPC's
// and the archive code's 1 MiB buffers) until two collections have passed.
// After importing an image and running three containers that was 10 MiB of
// the daemon's 17 MiB anonymous memory, while its live heap was 7 MiB.
//
// So once the daemon has gone quiet after a burst, it collects twice and
// gives every free page back. That costs two collections of a small heap,
// a few milliseconds, once per burst, and nothing while the daemon is busy
// or idle. GOMEMLIMIT is left to the operator, and so is GOGC when set
// (see minGoal for what is done when it is not).
const (
	// idlePoll is how often the allocation counter and the live heap
	// are read.
	idlePoll = time.Second
	// idleRate is the most a second may allocate for the daemon to count
	// as quiet: its own background work (the garbage collection scheduler,
	// CRI's status loops) allocates far less.
	idleRate = 256 << 10
	// burstSize is how much must have been allocated since the last trim
	// for another to be worth its collections; at least the live heap
	// too, since a collection's cost grows with it: a daemon with a large
	// heap polled by a kubelet every few seconds then collects at most
	// twice as often as its GOGC would have it.
	burstSize = 4 << 20
)

// The collector's goal is twice the live heap (GOGC=100), but no less
// than 4 MiB. The daemon's live heap is small, 3 MiB when idle, so a busy
// daemon collected whenever it had allocated another 3 or 4 MiB: under
// Version from 64 callers that was many collections a second, and a third
// of the daemon's CPU per call went to them and the allocation slow paths
// they cause. So while the live heap is small, the goal is held at
// minGoal instead (a GC percent of minGoal/live-1), which cut the CPU per
// call by a third; from a live heap of half minGoal on it is GOGC=100
// again. The heap a burst leaves is given back when it ends (above), so
// the steady footprint is not raised. An operator's GOGC is left as it is.
const minGoal = 16 << 20

// manageMemory runs until ctx ends: it keeps the collector's goal at
// least minGoal unless tuneGC is false, and gives memory back after
// bursts.
func manageMemory(ctx context.Context, tuneGC bool) {
	samples := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/live:bytes"}}
	read := func() (allocated, live uint64) {
		metrics.Read(samples)
		return samples[0].Value.Uint64(), samples[1].Value.Uint64()
	}
	t := time.NewTicker(idlePoll)
	defer t.Stop()
	last, _ := read()
	trimmed := last
	percent := 100
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, live := read()
		if tuneGC {
			if want := gcPercent(live); want != percent {
				debug.SetGCPercent(want)
				percent = want
			}
		}
		quiet := now-last < idleRate
		last = now
		if quiet && now-trimmed >= max(burstSize, live) {
			trimMemory(ctx)
			trimmed, _ = read()
			last = trimmed
		}
	}
}

// gcPercent is the GC percent that puts the goal at minGoal for a live
// heap of live bytes, at least 100, in steps of 50 so that a live heap
// that wavers does not reset it every second.
func gcPercent(live uint64) int {
	if live == 0 || live >= minGoal/2 {
		return 100
	}
	p := int(minGoal*100/live) - 100
	return max(100, p/50*50)
}

// trimMemory collects twice, so that what sat unused in sync.Pools through
// the first collection goes in the second, and returns all free memory to
// the system.
func trimMemory(ctx context.Context) {
	start := time.Now()
	runtime.GC()
	debug.FreeOSMemory()
	log.G(ctx).WithField("took", time.Since(start)).Debug("returned free memory to the system after a burst of work")
}
