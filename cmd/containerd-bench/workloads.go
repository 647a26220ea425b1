package main

import (
	"context"
	"fmt"
	"math"
	"os/exec"
	"slices"
	"syscall"
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
	// freshFS starts each round with new daemons, each on a filesystem
	// made for it, so that no round pays for the blocks and inodes an
	// earlier round freed: a workload that writes and deletes many files
	// otherwise measures the disk's history more than the daemon.
	freshFS bool
	// measure runs the workload against a running daemon. It must return
	// the same metrics, in the same order, for either flavor.
	measure func(ctx context.Context, b *bench, d *daemon) ([]metric, error)
	// compare, when set, replaces the default driver, which starts each
	// daemon in turn and measures it. Start-up uses it because it times
	// the start itself.
	compare func(ctx context.Context, b *bench) ([]row, error)
}

// workloads are run in this order; -only picks one by name.
var workloads = append([]*workload{
	startupWorkload,
	versionWorkload,
	contentWriteWorkload,
	imageListWorkload,
}, append(unpackWorkloads, append(runWorkloads, shimWorkload, ctrWorkload, criWorkload)...)...)

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

// run measures w on both daemons. By default both are started, then
// measured in turn for -rounds rounds, alternating who goes first so that
// both share the machine's noise; each metric is the median of its rounds.
// A measure func must therefore cope with being called again on the same
// daemon.
func (w *workload) run(ctx context.Context, b *bench) ([]row, error) {
	if w.compare != nil {
		return w.compare(ctx, b)
	}
	if w.freshFS {
		return w.runFresh(ctx, b)
	}
	running := map[*flavor]*daemon{}
	for _, f := range []*flavor{b.ours, b.theirs} {
		d, err := b.start(ctx, f, w.config)
		if err != nil {
			return nil, err
		}
		defer d.stop()
		running[f] = d
	}
	rounds := map[*flavor][][]metric{}
	for i := range b.opts.rounds {
		for _, f := range b.order(i) {
			ms, err := w.measure(ctx, b, running[f])
			if err != nil {
				return nil, fmt.Errorf("%s, round %d: %w", f.name, i+1, err)
			}
			rounds[f] = append(rounds[f], ms)
		}
	}
	for _, f := range []*flavor{b.ours, b.theirs} {
		if err := running[f].stop(); err != nil {
			return nil, err
		}
	}
	return b.fold(rounds)
}

// runFresh is run for a workload with freshFS: every measurement gets a
// daemon of its own on a new filesystem, started before and stopped after
// it.
func (w *workload) runFresh(ctx context.Context, b *bench) ([]row, error) {
	rounds := map[*flavor][][]metric{}
	for i := range b.opts.rounds {
		for _, f := range b.order(i) {
			d, err := b.startOnFreshFS(ctx, f, w.config)
			if err != nil {
				return nil, err
			}
			ms, err := w.measure(ctx, b, d)
			if serr := d.stop(); err == nil {
				err = serr
			}
			// Write back the discarded filesystem's deletion on the host
			// now rather than during the next round.
			syscall.Sync()
			if err != nil {
				return nil, fmt.Errorf("%s, round %d: %w", f.name, i+1, err)
			}
			rounds[f] = append(rounds[f], ms)
		}
	}
	return b.fold(rounds)
}

// fold turns both daemons' rounds into rows of medians.
func (b *bench) fold(rounds map[*flavor][][]metric) ([]row, error) {
	ours, err := medianMetrics(rounds[b.ours])
	if err != nil {
		return nil, err
	}
	theirs, err := medianMetrics(rounds[b.theirs])
	if err != nil {
		return nil, err
	}
	return pair(ours, theirs)
}

// order is who goes first in round i: ours in even rounds, theirs in odd,
// so that neither always gets the warmer or the quieter machine.
func (b *bench) order(i int) []*flavor {
	if i%2 == 1 {
		return []*flavor{b.theirs, b.ours}
	}
	return []*flavor{b.ours, b.theirs}
}

// medianMetrics folds several rounds of the same metrics into one, each
// value the median of its rounds.
func medianMetrics(rounds [][]metric) ([]metric, error) {
	if len(rounds) == 0 {
		return nil, nil
	}
	out := slices.Clone(rounds[0])
	for i := range out {
		vs := make([]float64, len(rounds))
		for r, ms := range rounds {
			if len(ms) != len(out) || ms[i].name != out[i].name {
				return nil, fmt.Errorf("round %d returned different metrics than round 1", r+1)
			}
			vs[r] = ms[i].value
		}
		out[i].value = median(vs)
	}
	return out, nil
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

// snapshotterWorkloads makes a workload once per snapshotter pair: ours
// and its counterpart in containerd, which calls its copying snapshotter
// "native" where ours is "naive". measure gets the name for the daemon it
// measures.
func snapshotterWorkloads(name, about string,
	measure func(ctx context.Context, b *bench, d *daemon, snapshotter string) ([]metric, error)) []*workload {
	var out []*workload
	for _, sn := range []struct{ ours, theirs string }{{"overlayfs", "overlayfs"}, {"naive", "native"}} {
		sn := sn
		out = append(out, &workload{
			name:  name + "-" + sn.ours,
			about: fmt.Sprintf("%s, on %s (theirs: %s)", about, sn.ours, sn.theirs),
			params: func(o options) string {
				return fmt.Sprintf("median of %d rounds", o.rounds)
			},
			measure: func(ctx context.Context, b *bench, d *daemon) ([]metric, error) {
				if d.flavor.distro {
					return measure(ctx, b, d, sn.theirs)
				}
				return measure(ctx, b, d, sn.ours)
			},
		})
	}
	return out
}

// onFreshFS marks workloads to run each round on new daemons and
// filesystems.
func onFreshFS(ws []*workload) []*workload {
	for _, w := range ws {
		w.freshFS = true
	}
	return ws
}

// ctr runs the distribution's ctr against d in the bench's namespace (by
// its path, not ctr on PATH, which after `make install` may be ours).
func (d *daemon) ctr(ctx context.Context, args ...string) (string, error) {
	return ctrAt(ctx, d.address, args...)
}

// ctrAt runs ctr against the socket at address.
func ctrAt(ctx context.Context, address string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, *distroCtrPath, append([]string{"-a", address, "-n", "bench"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ctr %v: %w\n%s", args, err, out)
	}
	return string(out), nil
}
