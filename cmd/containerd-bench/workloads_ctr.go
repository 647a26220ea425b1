package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// The ctr workload compares the clients, not the daemons: our ctr and the
// distribution's ctr 1.6 each run `ctr run --rm IMAGE ID true` against the
// same daemon (ours), one run each in turn, each pair led by the other.
// Everything but the client is then shared (the daemon, the shim, runc),
// so the ratio of the walls is the clients' difference diluted by what
// both wait for; the CPU each ctr process used is the client's own share.
var (
	oursCtrPath = flag.String("ctr", "",
		"our ctr, which the ctr workload compares with -distro-ctr (default: ctr beside -ours)")
	distroCtrPath = flag.String("distro-ctr", "/usr/bin/ctr",
		"the distribution's ctr, which the workloads that use ctr drive every daemon with")
)

var ctrWorkload = &workload{
	name:  "ctr-run",
	about: "ctr run --rm of `true` in a busybox image on our daemon, our ctr against the distribution's ctr 1.6 (-distro-ctr), alternating",
	params: func(o options) string {
		return fmt.Sprintf("%d runs each", o.rounds*runsPerRound)
	},
	compare: compareCtrs,
}

func compareCtrs(ctx context.Context, b *bench) (*table, error) {
	if !privateRun {
		return nil, errors.New("running containers needs root, for a private /run")
	}
	ours := *oursCtrPath
	if ours == "" {
		ours = filepath.Join(filepath.Dir(b.ours.path), "ctr")
	}
	// The two clients are the columns; b.ours and b.theirs stand for them
	// in the loops below.
	oursCtr := &flavor{label: "our ctr"}
	distroCtr := &flavor{label: "distro ctr"}
	clients := map[*flavor]*flavor{b.ours: oursCtr, b.theirs: distroCtr}
	ctrs := map[*flavor]string{b.ours: ours, b.theirs: *distroCtrPath}
	for _, p := range ctrs {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("ctr for the ctr workload: %w", err)
		}
	}
	archive, err := b.busyboxArchive()
	if err != nil {
		return nil, err
	}
	d, err := b.start(ctx, b.ours, "")
	if err != nil {
		return nil, err
	}
	defer d.stop()
	if _, err := d.ctr(ctx, "images", "import", "--snapshotter", "overlayfs", archive); err != nil {
		return nil, err
	}
	run := func(f *flavor, id string) (wall, cpu time.Duration, err error) {
		cmd := exec.CommandContext(ctx, ctrs[f], "-a", d.address, "-n", "bench",
			"run", "--rm", "--snapshotter", "overlayfs", runImageName, id, "true")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		wall = time.Since(start)
		if err != nil {
			return 0, 0, fmt.Errorf("%s run: %w\n%s", ctrs[f], err, out)
		}
		return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
	}
	// A first run of each, untimed, brings both binaries, the shim and
	// runc into the page cache.
	for _, f := range []*flavor{b.ours, b.theirs} {
		if _, _, err := run(f, "warm-up-"+f.name); err != nil {
			return nil, err
		}
	}
	syscall.Sync()

	n := b.opts.rounds * runsPerRound
	walls := map[*flavor][]time.Duration{}
	cpus := map[*flavor][]time.Duration{}
	for i := range n {
		for _, f := range b.order(i) {
			wall, cpu, err := run(f, fmt.Sprintf("run-%s-%d", f.name, i))
			if err != nil {
				return nil, fmt.Errorf("%s ctr, run %d: %w", f.name, i+1, err)
			}
			walls[f] = append(walls[f], wall)
			cpus[f] = append(cpus[f], cpu)
		}
	}
	// A few more runs each through an rpcTimer split a run into the time
	// some call to the daemon was under way and the rest, which is ctr's
	// own: starting, connecting, working between calls, exiting.
	timer, err := startRPCTimer(d)
	if err != nil {
		return nil, err
	}
	defer timer.close()
	own := map[*flavor][]time.Duration{}
	for i := range splitRunCount {
		for _, f := range b.order(i) {
			cmd := exec.CommandContext(ctx, ctrs[f], "-a", timer.address, "-n", "bench",
				"run", "--rm", "--snapshotter", "overlayfs", runImageName, fmt.Sprintf("split-%s-%d", f.name, i), "true")
			timer.take()
			start := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("%s ctr, run through the rpc timer: %w\n%s", f.name, err, out)
			}
			wall := time.Since(start)
			own[f] = append(own[f], wall-busy(timer.take()))
		}
	}
	metrics := func(f *flavor) []metric {
		w := summarize(walls[f])
		return []metric{
			duration("run --rm p50", w.p50),
			duration("run --rm p90", w.p90),
			duration("ctr CPU per run p50", summarize(cpus[f]).p50),
			duration("ctr's own time (no call under way) p50", summarize(own[f]).p50),
		}
	}
	return tabulate(map[*flavor][]metric{
		clients[b.ours]:   metrics(b.ours),
		clients[b.theirs]: metrics(b.theirs),
	}, oursCtr, distroCtr)
}
