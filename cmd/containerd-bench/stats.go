package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// A unit says how a metric's value is printed and which direction is
// better, which decides how its ratio is taken.
type unit int

const (
	seconds     unit = iota // a time; lower is better
	perSecond               // a rate of operations; higher is better
	bytesPerSec             // a rate of bytes; higher is better
	bytesSize               // an amount of memory; lower is better
)

func (u unit) higherIsBetter() bool { return u == perSecond || u == bytesPerSec }

// format prints v, which is in seconds, 1/s or B/s, for the table.
func (u unit) format(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	switch u {
	case seconds:
		return formatDuration(time.Duration(v * float64(time.Second)))
	case perSecond:
		return fmt.Sprintf("%.0f/s", v)
	case bytesPerSec:
		return fmt.Sprintf("%.1f MiB/s", v/(1<<20))
	case bytesSize:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	}
	return fmt.Sprint(v)
}

// formatDuration prints d with three significant digits, which is as
// much as run-to-run noise lets a benchmark claim.
func formatDuration(d time.Duration) string {
	switch abs := d.Abs(); {
	case abs >= time.Second:
		return fmt.Sprintf("%.3gs", d.Seconds())
	case abs >= time.Millisecond:
		return fmt.Sprintf("%.3gms", float64(d)/float64(time.Millisecond))
	case abs >= time.Microsecond:
		return fmt.Sprintf("%.3gµs", float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%dns", d.Nanoseconds())
}

// ratio compares ours with theirs so that below 1 always means ours is
// better: ours/theirs for times, theirs/ours for rates.
func ratio(u unit, ours, theirs float64) float64 {
	num, den := ours, theirs
	if u.higherIsBetter() {
		num, den = theirs, ours
	}
	if den == 0 || math.IsNaN(num) || math.IsNaN(den) {
		return math.NaN()
	}
	return num / den
}

// formatRatio prints a ratio for the table; one that cannot be taken
// prints as "-".
func formatRatio(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "-"
	}
	return fmt.Sprintf("%.2f", r)
}

// percentile returns the p-th percentile (0 ≤ p ≤ 100) of sorted,
// interpolating linearly between the nearest ranks as most tools do, so
// that the 50th of an even count is the mean of the middle two.
func percentile(sorted []time.Duration, p float64) time.Duration {
	switch n := len(sorted); {
	case n == 0:
		return 0
	case n == 1 || p <= 0:
		return sorted[0]
	case p >= 100:
		return sorted[n-1]
	}
	pos := p / 100 * float64(len(sorted)-1)
	lo := int(pos)
	if lo+1 >= len(sorted) {
		return sorted[lo]
	}
	frac := pos - float64(lo)
	return sorted[lo] + time.Duration(math.Round(frac*float64(sorted[lo+1]-sorted[lo])))
}

// median returns the median of vs, which it sorts in place; of an even
// count it is the mean of the middle two.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2]
	}
	return (vs[n/2-1] + vs[n/2]) / 2
}

// summary is what the tables report of a set of samples.
type summary struct {
	n             int
	min, p50, p90 time.Duration
	p99, max      time.Duration
}

// summarize sorts samples in place and summarizes them.
func summarize(samples []time.Duration) summary {
	slices.Sort(samples)
	if len(samples) == 0 {
		return summary{}
	}
	return summary{
		n:   len(samples),
		min: samples[0],
		p50: percentile(samples, 50),
		p90: percentile(samples, 90),
		p99: percentile(samples, 99),
		max: samples[len(samples)-1],
	}
}
