package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func ms(v ...float64) []time.Duration {
	d := make([]time.Duration, len(v))
	for i, x := range v {
		d[i] = time.Duration(x * float64(time.Millisecond))
	}
	return d
}

func TestPercentile(t *testing.T) {
	for _, tc := range []struct {
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 50, ms(7)[0]},
		{ms(7), 99, ms(7)[0]},
		{ms(1, 2, 3), 50, ms(2)[0]},
		{ms(1, 2, 3, 4), 50, ms(2.5)[0]}, // even count: mean of the middle two
		{ms(1, 2, 3, 4), 0, ms(1)[0]},
		{ms(1, 2, 3, 4), 100, ms(4)[0]},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), 90, ms(10)[0]},
		{ms(0, 10), 90, ms(9)[0]},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, ms(9.1)[0]},
	} {
		if got := percentile(tc.samples, tc.p); got != tc.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tc.samples, tc.p, got, tc.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	s := summarize(ms(5, 1, 4, 2, 3)) // unsorted on purpose
	want := summary{n: 5, min: ms(1)[0], p50: ms(3)[0], p90: ms(4.6)[0], p99: ms(4.96)[0], max: ms(5)[0]}
	if s != want {
		t.Errorf("summarize = %+v, want %+v", s, want)
	}
	if s := summarize(nil); s != (summary{}) {
		t.Errorf("summarize(nil) = %+v, want zero", s)
	}
}

func TestRatio(t *testing.T) {
	for _, tc := range []struct {
		u            unit
		ours, theirs float64
		want         string
	}{
		{seconds, 1, 2, "0.50"},       // ours takes half the time: better, below 1
		{seconds, 3, 2, "1.50"},       // ours slower
		{perSecond, 200, 100, "0.50"}, // ours twice the rate: better, below 1
		{perSecond, 100, 300, "3.00"},
		{bytesPerSec, 1 << 20, 1 << 20, "1.00"},
		{seconds, 1, 0, "-"}, // nothing to divide by
		{perSecond, 0, 100, "-"},
		{seconds, math.NaN(), 1, "-"},
	} {
		if got := formatRatio(ratio(tc.u, tc.ours, tc.theirs)); got != tc.want {
			t.Errorf("ratio(%v, %v, %v) = %s, want %s", tc.u, tc.ours, tc.theirs, got, tc.want)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		u    unit
		v    float64
		want string
	}{
		{seconds, 0.0123456, "12.3ms"},
		{seconds, 0.000045678, "45.7µs"},
		{seconds, 1.5, "1.5s"},
		{seconds, 250e-9, "250ns"},
		{perSecond, 12345.6, "12346/s"},
		{bytesPerSec, 3 << 20, "3.0 MiB/s"},
		{seconds, math.NaN(), "-"},
	} {
		if got := tc.u.format(tc.v); got != tc.want {
			t.Errorf("format(%v, %v) = %q, want %q", tc.u, tc.v, got, tc.want)
		}
	}
}

func TestPair(t *testing.T) {
	rows, err := pair(
		[]metric{duration("p50", time.Millisecond), rate("calls/s", 10, time.Second)},
		[]metric{duration("p50", 2*time.Millisecond), rate("calls/s", 20, time.Second)},
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].ours != 0.001 || rows[0].theirs != 0.002 || rows[1].ours != 10 || rows[1].theirs != 20 {
		t.Errorf("pair = %+v", rows)
	}
	if _, err := pair([]metric{duration("p50", 0)}, []metric{duration("p99", 0)}); err == nil || !strings.Contains(err.Error(), "p50") {
		t.Errorf("pair of mismatched metrics: err = %v", err)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		vs   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(tc.vs); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.vs, got, tc.want)
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
}

func TestMedianMetrics(t *testing.T) {
	round := func(p50 time.Duration, n int) []metric {
		return []metric{duration("p50", p50), rate("calls/s", n, time.Second)}
	}
	got, err := medianMetrics([][]metric{
		round(3*time.Millisecond, 100),
		round(1*time.Millisecond, 300),
		round(2*time.Millisecond, 200),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].value != 0.002 || got[1].value != 200 {
		t.Errorf("medianMetrics = %+v, want p50 2ms and 200 calls/s", got)
	}
	if _, err := medianMetrics([][]metric{round(0, 1), round(0, 1)[:1]}); err == nil {
		t.Error("medianMetrics of rounds with different metrics: no error")
	}
}
