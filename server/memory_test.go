package server

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPercentHoldsTheGoalAtMinGoal(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, 100},
		{1 << 20, 1500},
		{3 << 20, 400}, // 433, in steps of 50
		{minGoal / 4, 300},
		{minGoal/2 - 1, 100},
		{minGoal / 2, 100},
		{1 << 30, 100},
	} {
		if got := gcPercent(tc.live); got != tc.want {
			t.Errorf("gcPercent(%d) = %d, want %d", tc.live, got, tc.want)
		}
	}
}

// The daemon raises the GC percent of its small heap, unless told not to
// (the operator set GOGC).
func TestManageMemorySetsGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	gogc := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}

	runtime.GC() // the live heap is known after a collection

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { manageMemory(ctx, false); close(done) }()
	time.Sleep(3 * idlePoll)
	cancel()
	<-done
	if p := gogc(); p != 100 {
		t.Fatalf("GC percent is %d with tuning off, want 100 as it was", p)
	}

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go manageMemory(ctx, true)
	deadline := time.Now().Add(20 * idlePoll)
	for gogc() == 100 {
		if time.Now().After(deadline) {
			t.Fatal("the GC percent of a test's small heap was not raised")
		}
		time.Sleep(idlePoll / 10)
	}
}

// After a burst of allocation, once quiet, the daemon collects twice and
// returns free memory (runtime.GC and FreeOSMemory are forced cycles).
func TestManageMemoryTrimsAfterABurst(t *testing.T) {
	forced := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go manageMemory(ctx, false)
	time.Sleep(idlePoll) // the burst comes after its first reading
	before := forced()
	for range 64 {
		sink = make([]byte, 256<<10)
	}
	sink = nil
	deadline := time.Now().Add(20 * idlePoll)
	for forced() < before+2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d forced collections after a burst, want 2", forced()-before)
		}
		time.Sleep(idlePoll / 10)
	}
}

var sink []byte
