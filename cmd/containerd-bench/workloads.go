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

// A workload is one thing measured on the daemons.
type workload struct {
	name  string
	about string // one line, for -h and the table's heading
	// params, when set, tells the options that shaped a run, for the
	// heading.
	params func(options) string
	// config is extra TOML for every daemon, tables only.
	config string
	// fresh starts each round with new daemons, started before and
	// stopped after their measurement: for what must be measured from a
	// daemon's start, such as its memory after a given workload.
	fresh bool
	// freshFS is fresh with each daemon on a filesystem made for it, so
	// that no round pays for the blocks and inodes an earlier round
	// freed: a workload that writes and deletes many files otherwise
	// measures the disk's history more than the daemon.
	freshFS bool
	// measure runs the workload against a running daemon. It must return
	// the same metrics, in the same order, for every flavor.
	measure func(ctx context.Context, b *bench, d *daemon) ([]metric, error)
	// compare, when set, replaces the default driver, which measures
	// every daemon (ours, containerd 2.x and, unless -distro is '', the
	// distribution's 1.6) in turn. Start-up uses it because it times the
	// start itself; the workloads that run containers, to alternate run
	// by run between two daemons.
	compare func(ctx context.Context, b *bench) (*table, error)
}

// workloads are run in this order; -only picks one by name.
var workloads = append([]*workload{
	startupWorkload,
	versionWorkload,
	mixedWorkload,
	contentWriteWorkload,
	imageListWorkload,
	rssWorkload,
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

// run measures w on every daemon. By default all are started, then
// measured in turn for -rounds rounds, each round led by another so that
// all share the machine's noise; each metric is the median of its rounds.
// A measure func must therefore cope with being called again on the same
// daemon.
func (w *workload) run(ctx context.Context, b *bench) (*table, error) {
	if w.compare != nil {
		return w.compare(ctx, b)
	}
	if w.fresh || w.freshFS {
		return w.runFresh(ctx, b)
	}
	running := map[*flavor]*daemon{}
	for _, f := range b.flavors() {
		d, err := b.start(ctx, f, w.config)
		if err != nil {
			return nil, err
		}
		defer d.stop()
		running[f] = d
	}
	rounds := map[*flavor][][]metric{}
	for i := range b.opts.rounds {
		for _, f := range rotate(b.flavors(), i) {
			ms, err := w.measure(ctx, b, running[f])
			if err != nil {
				return nil, fmt.Errorf("%s, round %d: %w", f.label, i+1, err)
			}
			rounds[f] = append(rounds[f], ms)
		}
	}
	for _, f := range b.flavors() {
		if err := running[f].stop(); err != nil {
			return nil, err
		}
	}
	return fold(rounds, b.flavors()...)
}

// runFresh is run for a workload with fresh or freshFS: every measurement
// gets a daemon of its own, started before and stopped after it.
func (w *workload) runFresh(ctx context.Context, b *bench) (*table, error) {
	rounds := map[*flavor][][]metric{}
	for i := range b.opts.rounds {
		for _, f := range rotate(b.flavors(), i) {
			start := b.start
			if w.freshFS {
				start = b.startOnFreshFS
			}
			d, err := start(ctx, f, w.config)
			if err != nil {
				return nil, err
			}
			ms, err := w.measure(ctx, b, d)
			if serr := d.stop(); err == nil {
				err = serr
			}
			if w.freshFS {
				// Write back the discarded filesystem's deletion on the
				// host now rather than during the next round.
				syscall.Sync()
			}
			if err != nil {
				return nil, fmt.Errorf("%s, round %d: %w", f.label, i+1, err)
			}
			rounds[f] = append(rounds[f], ms)
		}
	}
	return fold(rounds, b.flavors()...)
}

// fold turns each daemon's rounds into a table of medians, a column per
// flavor of fs.
func fold(rounds map[*flavor][][]metric, fs ...*flavor) (*table, error) {
	medians := map[*flavor][]metric{}
	for _, f := range fs {
		ms, err := medianMetrics(rounds[f])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.label, err)
		}
		medians[f] = ms
	}
	return tabulate(medians, fs...)
}

// order is who goes first in round i of a two-way comparison: ours in
// even rounds, theirs in odd, so that neither always gets the warmer or
// the quieter machine.
func (b *bench) order(i int) []*flavor {
	return rotate([]*flavor{b.ours, b.theirs}, i)
}

// rotate returns fs in the order of round i: each flavor leads one round
// in len(fs), and keeps its place relative to the others.
func rotate(fs []*flavor, i int) []*flavor {
	if len(fs) == 0 {
		return nil
	}
	k := i % len(fs)
	return append(slices.Clone(fs[k:]), fs[:k]...)
}

// medianMetrics folds several rounds of the same metrics into one, each
// value the median of its rounds; but counts (of errors, say) are summed,
// since a median would hide what happened in a minority of rounds.
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
		if out[i].unit == count {
			out[i].value = sum(vs)
		} else {
			out[i].value = median(vs)
		}
	}
	return out, nil
}

// pair tabulates the metrics of a two-way comparison: ours and theirs.
func (b *bench) pair(ours, theirs []metric) (*table, error) {
	return tabulate(map[*flavor][]metric{b.ours: ours, b.theirs: theirs}, b.ours, b.theirs)
}

// snapshotterWorkloads makes a workload once per snapshotter pair: ours
// and its counterpart in containerd (2.x and 1.6 alike), which calls its
// copying snapshotter "native" where ours is "naive". measure gets the
// name for the daemon it measures.
func snapshotterWorkloads(name, about string,
	measure func(ctx context.Context, b *bench, d *daemon, snapshotter string) ([]metric, error)) []*workload {
	var out []*workload
	for _, sn := range []struct{ ours, theirs string }{{"overlayfs", "overlayfs"}, {"naive", "native"}} {
		sn := sn
		out = append(out, &workload{
			name:  name + "-" + sn.ours,
			about: fmt.Sprintf("%s, on %s (containerd's: %s)", about, sn.ours, sn.theirs),
			params: func(o options) string {
				return fmt.Sprintf("median of %d rounds", o.rounds)
			},
			measure: func(ctx context.Context, b *bench, d *daemon) ([]metric, error) {
				if d.flavor.containerd {
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
