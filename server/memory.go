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
// or idle. It leaves the operator's GOGC and GOMEMLIMIT alone: they still
// decide how the heap grows while the daemon works.
const (
	// idlePoll is how often the allocation counter is read.
	idlePoll = time.Second
	// idleRate is the most a second may allocate for the daemon to count
	// as quiet: its own background work (the garbage collection scheduler,
	// CRI's status loops) allocates far less.
	idleRate = 256 << 10
	// burstSize is how much must have been allocated since the last trim
	// for another to be worth its collections.
	burstSize = 4 << 20
)

// trimWhenIdle runs until ctx ends.
func trimWhenIdle(ctx context.Context) {
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	allocated := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	t := time.NewTicker(idlePoll)
	defer t.Stop()
	last := allocated()
	trimmed := last
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := allocated()
		quiet := now-last < idleRate
		last = now
		if quiet && now-trimmed >= burstSize {
			trimMemory(ctx)
			trimmed = allocated()
			last = trimmed
		}
	}
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
