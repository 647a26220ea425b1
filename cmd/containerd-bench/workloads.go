package main

import (
	"context"
	"fmt"
	"math"
	"time"
)

// A workload is one thing measured on both daemons.
type workload struct {
	name  string
	about string // one line, for -h and the table's heading
	// params, when set, tells the options that shaped a run, for the
	// heading.
	params func(options) string
	// config is extra TOML for both daemons, tables only.
	config string
	// measure runs the workload against a running daemon. It must return
	// the same metrics, in the same order, for either flavor.
	measure func(ctx context.Context, b *bench, d *daemon) ([]metric, error)
	// compare, when set, replaces the default driver, which starts each
	// daemon in turn and measures it. Start-up uses it because it times
	// the start itself.
	compare func(ctx context.Context, b *bench) ([]row, error)
}

// workloads are run in this order; -only picks one by name.
var workloads = []*workload{
	startupWorkload,
	versionWorkload,
}

// A metric is one measured value of one daemon.
type metric struct {
	name  string
	unit  unit
	value float64 // in seconds, 1/s or B/s, as unit says
}

func duration(name string, d time.Duration) metric {
	return metric{name: name, unit: seconds, value: d.Seconds()}
}

func rate(name string, n int, elapsed time.Duration) metric {
	v := math.NaN()
	if elapsed > 0 {
		v = float64(n) / elapsed.Seconds()
	}
	return metric{name: name, unit: perSecond, value: v}
}

// A row is one metric of both daemons, a line of the table.
type row struct {
	metric       string
	unit         unit
	ours, theirs float64
}

// run measures w on both daemons.
func (w *workload) run(ctx context.Context, b *bench) ([]row, error) {
	if w.compare != nil {
		return w.compare(ctx, b)
	}
	ours, err := b.measureOne(ctx, w, b.ours)
	if err != nil {
		return nil, err
	}
	theirs, err := b.measureOne(ctx, w, b.theirs)
	if err != nil {
		return nil, err
	}
	return pair(ours, theirs)
}

// measureOne runs w against a daemon of flavor f started for it alone.
func (b *bench) measureOne(ctx context.Context, w *workload, f *flavor) ([]metric, error) {
	d, err := b.start(ctx, f, w.config)
	if err != nil {
		return nil, err
	}
	ms, err := w.measure(ctx, b, d)
	if serr := d.stop(); err == nil && serr != nil {
		err = serr
	}
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", w.name, f.name, err)
	}
	return ms, nil
}

// pair lines up the metrics of both daemons into rows.
func pair(ours, theirs []metric) ([]row, error) {
	if len(ours) != len(theirs) {
		return nil, fmt.Errorf("ours has %d metrics, theirs %d", len(ours), len(theirs))
	}
	rows := make([]row, len(ours))
	for i, o := range ours {
		t := theirs[i]
		if o.name != t.name || o.unit != t.unit {
			return nil, fmt.Errorf("metric %d is %q for ours but %q for theirs", i, o.name, t.name)
		}
		rows[i] = row{metric: o.name, unit: o.unit, ours: o.value, theirs: t.value}
	}
	return rows, nil
}
