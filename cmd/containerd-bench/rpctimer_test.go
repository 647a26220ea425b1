package main

import (
	"testing"
	"time"
)

func TestBusy(t *testing.T) {
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	calls := []rpcCall{
		{start: at(50), took: 10 * time.Millisecond}, // 50-60, within the Wait below
		{start: at(0), took: 5 * time.Millisecond},   // 0-5
		{start: at(40), took: 40 * time.Millisecond}, // 40-80: the Wait
		{start: at(70), took: 20 * time.Millisecond}, // 70-90: past the Wait's end
		{start: at(100), took: 1 * time.Millisecond}, // 100-101
	}
	if got, want := busy(calls), 56*time.Millisecond; got != want {
		t.Errorf("busy = %v, want %v (0-5, 40-90, 100-101)", got, want)
	}
	if got := busy(nil); got != 0 {
		t.Errorf("busy(nil) = %v", got)
	}
}
