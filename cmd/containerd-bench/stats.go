package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
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
	bytesDelta              // a change in memory, either way; no ratio
	count                   // a number of events, such as errors; no ratio
)

func (u unit) higherIsBetter() bool { return u == perSecond || u == bytesPerSec }

// ratioless units compare badly as quotients: a growth of memory may be
// zero or negative, and 3 errors against 0 is no ratio at all. Their
// values are read side by side.
func (u unit) ratioless() bool { return u == bytesDelta || u == count }

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
	case bytesDelta:
		return fmt.Sprintf("%+.1f MiB", v/(1<<20))
	case count:
		return fmt.Sprintf("%.0f", v)
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
	if u.ratioless() {
		return math.NaN()
	}
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

func sum(vs []float64) float64 {
	var s float64
	for _, v := range vs {
		s += v
	}
	return s
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

// A row is one metric of every daemon in a table, a line of it.
type row struct {
	metric string
	unit   unit
	vals   []float64 // one per column of its table, ours first; NaN if not measured
}

// A table is what a workload reports: its columns, ours first and then
// the daemons (or clients) compared with it, and a row per metric.
type table struct {
	cols []string
	rows []row
}

// tabulate lines up the metrics each of fs returned into a table whose
// columns are fs's labels, in that order. Every flavor must have returned
// the same metrics in the same order.
func tabulate(metrics map[*flavor][]metric, fs ...*flavor) (*table, error) {
	t := &table{}
	if len(fs) == 0 {
		return t, nil
	}
	first := metrics[fs[0]]
	for _, f := range fs {
		t.cols = append(t.cols, f.label)
		ms := metrics[f]
		if len(ms) != len(first) {
			return nil, fmt.Errorf("%s has %d metrics, %s %d", fs[0].label, len(first), f.label, len(ms))
		}
		for i, m := range ms {
			if m.name != first[i].name || m.unit != first[i].unit {
				return nil, fmt.Errorf("metric %d is %q for %s but %q for %s", i, first[i].name, fs[0].label, m.name, f.label)
			}
		}
	}
	for i, m := range first {
		r := row{metric: m.name, unit: m.unit, vals: make([]float64, len(fs))}
		for j, f := range fs {
			r.vals[j] = metrics[f][i].value
		}
		t.rows = append(t.rows, r)
	}
	return t, nil
}

// printTable prints one workload's table, aligned: each column's value,
// then ours against each of the others ("ours/X": below 1 means ours is
// better, see ratio).
func printTable(out io.Writer, heading, name string, t *table) {
	fmt.Fprintf(out, "\n%s\n", heading)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "workload\tmetric")
	for _, c := range t.cols {
		fmt.Fprintf(tw, "\t%s", c)
	}
	for _, c := range t.cols[min(1, len(t.cols)):] {
		fmt.Fprintf(tw, "\t%s/%s", t.cols[0], c)
	}
	fmt.Fprintln(tw)
	for _, r := range t.rows {
		fmt.Fprintf(tw, "%s\t%s", name, r.metric)
		for _, v := range r.vals {
			fmt.Fprintf(tw, "\t%s", r.unit.format(v))
		}
		for _, v := range r.vals[min(1, len(r.vals)):] {
			fmt.Fprintf(tw, "\t%s", formatRatio(ratio(r.unit, r.vals[0], v)))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}
