package main

import (
	"math"
	"slices"
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
		{bytesSize, 20 << 20, 40 << 20, "0.50"},
		{bytesDelta, 1 << 20, 2 << 20, "-"}, // growths may be 0 or negative: no ratio
		{count, 0, 3, "-"},
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
		{bytesSize, 30 << 20, "30.0 MiB"},
		{bytesDelta, 1.5 * (1 << 20), "+1.5 MiB"},
		{bytesDelta, -2 << 20, "-2.0 MiB"},
		{count, 3, "3"},
	} {
		if got := tc.u.format(tc.v); got != tc.want {
			t.Errorf("format(%v, %v) = %q, want %q", tc.u, tc.v, got, tc.want)
		}
	}
}

// three are flavors as a three-way comparison has them.
func three() (ours, c2, c16 *flavor) {
	return &flavor{name: "ours", label: "ours"}, &flavor{name: "theirs", label: "2.4.2"}, &flavor{name: "distro", label: "1.6.20"}
}

func TestTabulate(t *testing.T) {
	ours, c2, c16 := three()
	tab, err := tabulate(map[*flavor][]metric{
		ours: {duration("p50", time.Millisecond), rate("calls/s", 10, time.Second)},
		c2:   {duration("p50", 2*time.Millisecond), rate("calls/s", 20, time.Second)},
		c16:  {duration("p50", 3*time.Millisecond), rate("calls/s", 30, time.Second)},
	}, ours, c2, c16)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tab.cols, []string{"ours", "2.4.2", "1.6.20"}) {
		t.Errorf("cols = %q", tab.cols)
	}
	if len(tab.rows) != 2 ||
		!slices.Equal(tab.rows[0].vals, []float64{0.001, 0.002, 0.003}) ||
		!slices.Equal(tab.rows[1].vals, []float64{10, 20, 30}) {
		t.Errorf("rows = %+v", tab.rows)
	}
	// The columns follow the flavors given, not the map.
	tab, err = tabulate(map[*flavor][]metric{
		ours: {duration("p50", time.Millisecond)},
		c2:   {duration("p50", 2*time.Millisecond)},
	}, c2, ours)
	if err != nil || !slices.Equal(tab.cols, []string{"2.4.2", "ours"}) || !slices.Equal(tab.rows[0].vals, []float64{0.002, 0.001}) {
		t.Errorf("tabulate(c2, ours) = %+v, %v", tab, err)
	}
	for _, bad := range []map[*flavor][]metric{
		{ours: {duration("p50", 0)}, c2: {duration("p99", 0)}},                            // other name
		{ours: {duration("p50", 0)}, c2: {{name: "p50", unit: perSecond}}},                // other unit
		{ours: {duration("p50", 0)}, c2: {duration("p50", 0), duration("p99", 0)}},        // more
		{ours: {duration("p50", 0), duration("p99", 0)}, c2: {duration("p50", 0)}},        // fewer
		{ours: {duration("p50", 0)}, c2: {duration("p50", 0)}, c16: {duration("p90", 0)}}, // the third differs
	} {
		if _, err := tabulate(bad, ours, c2, c16); err == nil {
			t.Errorf("tabulate of mismatched metrics %v: no error", bad)
		}
	}
}

func TestFold(t *testing.T) {
	ours, c2, c16 := three()
	round := func(p50 time.Duration, n int, errs float64) []metric {
		return []metric{duration("p50", p50), rate("calls/s", n, time.Second), {name: "errors", unit: count, value: errs}}
	}
	tab, err := fold(map[*flavor][][]metric{
		ours: {round(3*time.Millisecond, 100, 0), round(1*time.Millisecond, 300, 2), round(2*time.Millisecond, 200, 0)},
		c2:   {round(6*time.Millisecond, 10, 1), round(4*time.Millisecond, 30, 1), round(5*time.Millisecond, 20, 1)},
		c16:  {round(9*time.Millisecond, 1, 0), round(7*time.Millisecond, 3, 0), round(8*time.Millisecond, 2, 0)},
	}, ours, c2, c16)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]float64{
		{0.002, 0.005, 0.008}, // medians
		{200, 20, 2},
		{2, 3, 0}, // counts are summed: one bad round of three must show
	}
	for i, w := range want {
		if !slices.Equal(tab.rows[i].vals, w) {
			t.Errorf("row %s = %v, want %v", tab.rows[i].metric, tab.rows[i].vals, w)
		}
	}
	if _, err := fold(map[*flavor][][]metric{
		ours: {round(0, 1, 0)},
		c2:   {round(0, 1, 0), round(0, 1, 0)[:1]},
	}, ours, c2); err == nil || !strings.Contains(err.Error(), "2.4.2") {
		t.Errorf("fold of a round with other metrics: err = %v, want one naming 2.4.2", err)
	}
}

func TestRotate(t *testing.T) {
	ours, c2, c16 := three()
	fs := []*flavor{ours, c2, c16}
	labels := func(fs []*flavor) string {
		var s []string
		for _, f := range fs {
			s = append(s, f.label)
		}
		return strings.Join(s, ",")
	}
	for i, want := range []string{"ours,2.4.2,1.6.20", "2.4.2,1.6.20,ours", "1.6.20,ours,2.4.2", "ours,2.4.2,1.6.20"} {
		if got := labels(rotate(fs, i)); got != want {
			t.Errorf("rotate(round %d) = %s, want %s", i, got, want)
		}
	}
	if got := labels(fs); got != "ours,2.4.2,1.6.20" {
		t.Errorf("rotate changed its argument: %s", got)
	}
	b := &bench{ours: ours, theirs: c2}
	if labels(b.order(0)) != "ours,2.4.2" || labels(b.order(1)) != "2.4.2,ours" {
		t.Errorf("order = %s then %s", labels(b.order(0)), labels(b.order(1)))
	}
	if labels(b.flavors()) != "ours,2.4.2" {
		t.Errorf("flavors without distro = %s", labels(b.flavors()))
	}
	b.distro = c16
	if labels(b.flavors()) != "ours,2.4.2,1.6.20" {
		t.Errorf("flavors with distro = %s", labels(b.flavors()))
	}
}

func TestPrintTable(t *testing.T) {
	var out strings.Builder
	printTable(&out, "x: heading", "x", &table{
		cols: []string{"ours", "2.4.2", "1.6.20"},
		rows: []row{
			{metric: "p50", unit: seconds, vals: []float64{0.001, 0.002, 0.004}},
			{metric: "calls/s", unit: perSecond, vals: []float64{300, 100, math.NaN()}},
			{metric: "errors", unit: count, vals: []float64{0, 3, 1}},
		},
	})
	want := `
x: heading
workload  metric   ours   2.4.2  1.6.20  ours/2.4.2  ours/1.6.20
x         p50      1ms    2ms    4ms     0.50        0.25
x         calls/s  300/s  100/s  -       0.33        -
x         errors   0      3      1       -           -
`
	if out.String() != want {
		t.Errorf("printTable =\n%s\nwant\n%s", out.String(), want)
	}
}

func TestVersionLabel(t *testing.T) {
	for v, want := range map[string]string{
		"v2.4.2 abc123":           "2.4.2",
		"2.4.2":                   "2.4.2",
		"1.6.20~ds1 1.6.20~ds1-1": "1.6.20",
		"v1.7.0-rc.1 deadbeef":    "1.7.0",
		"":                        "theirs",
		"   ":                     "theirs",
		"dev":                     "theirs",
		"... revision":            "theirs",
	} {
		if got := versionLabel(v, "theirs"); got != want {
			t.Errorf("versionLabel(%q) = %q, want %q", v, got, want)
		}
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
