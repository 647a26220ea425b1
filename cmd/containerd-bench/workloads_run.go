package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The run workloads time `ctr run --rm IMAGE ID true`, the whole life of a
// trivial container, and the CPU the daemon itself spends on each. Most of
// that life is ctr, the shim and runc, the same binaries for both daemons,
// and the machine's pace drifts by more than the daemons differ; so the
// runs alternate between the daemons one by one, each pair in turn led by
// the other, and both share every drift.
var runWorkloads = []*workload{
	runWorkload("overlayfs", "overlayfs"),
	runWorkload("naive", "native"),
}

const (
	runImageName = "bench.example.com/busybox:latest"
	// A run's time varies by ~10% from one run to the next, about what
	// the daemons differ by; the medians of 60 runs each still moved the
	// ratio by ±0.02 from one bench to the next.
	runsPerRound = 40
)

func runWorkload(ours, theirs string) *workload {
	return &workload{
		name: "run-" + ours,
		about: fmt.Sprintf("ctr run --rm of `true` in a busybox image, on %s (containerd's: %s), runs alternating between ours and containerd 2.x (-theirs)",
			ours, theirs),
		params: func(o options) string {
			return fmt.Sprintf("%d runs each", o.rounds*runsPerRound)
		},
		compare: func(ctx context.Context, b *bench) (*table, error) {
			return compareRuns(ctx, b, map[*flavor]string{b.ours: ours, b.theirs: theirs})
		},
	}
}

// compareRuns starts both daemons, imports the image into each with its
// snapshotter, and times -rounds times runsPerRound runs on each.
func compareRuns(ctx context.Context, b *bench, snapshotter map[*flavor]string) (*table, error) {
	if !privateRun {
		return nil, errors.New("running containers needs root, for a private /run")
	}
	archive, err := b.busyboxArchive()
	if err != nil {
		return nil, err
	}
	flavors := []*flavor{b.ours, b.theirs}
	running := map[*flavor]*daemon{}
	for _, f := range flavors {
		d, err := b.start(ctx, f, "")
		if err != nil {
			return nil, err
		}
		defer d.stop()
		running[f] = d
		if _, err := d.ctr(ctx, "images", "import", "--snapshotter", snapshotter[f], archive); err != nil {
			return nil, err
		}
	}
	run := func(f *flavor, address, id string) (time.Duration, error) {
		start := time.Now()
		_, err := ctrAt(ctx, address, "run", "--rm", "--snapshotter", snapshotter[f], runImageName, id, "true")
		return time.Since(start), err
	}
	// A first run each, untimed, brings the shim and runc into the page
	// cache. What the imports left to write back is flushed, so that it
	// lands on neither daemon's runs.
	for _, f := range flavors {
		if _, err := run(f, running[f].address, "warm-up"); err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	syscall.Sync()

	n := b.opts.rounds * runsPerRound
	walls := map[*flavor][]time.Duration{}
	cpu := map[*flavor]time.Duration{}
	for _, f := range flavors {
		c, err := processCPU(running[f].cmd.Process.Pid)
		if err != nil {
			return nil, err
		}
		cpu[f] = -c
	}
	for i := range n {
		for _, f := range b.order(i) {
			wall, err := run(f, running[f].address, fmt.Sprintf("run-%d", i))
			if err != nil {
				return nil, fmt.Errorf("%s, run %d: %w", f.name, i+1, err)
			}
			walls[f] = append(walls[f], wall)
		}
	}
	for _, f := range flavors {
		c, err := processCPU(running[f].cmd.Process.Pid)
		if err != nil {
			return nil, err
		}
		cpu[f] += c
	}
	split, err := splitRuns(ctx, b, running, func(f *flavor, address, id string) error {
		_, err := run(f, address, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	metrics := func(f *flavor) []metric {
		s := summarize(walls[f])
		return append([]metric{
			duration("run --rm p50", s.p50),
			duration("run --rm p90", s.p90),
			duration("daemon CPU per run", cpu[f]/time.Duration(n)),
		}, split[f]...)
	}
	return b.pair(metrics(b.ours), metrics(b.theirs))
}

// splitRunCount is how many runs each daemon makes through an rpcTimer.
const splitRunCount = 20

// splitRuns makes a few more runs on each daemon through an rpcTimer and
// splits a run's time by whom ctr waited for: the daemon alone (every call
// but the Tasks service's), and the Tasks calls, which wait mostly for the
// shim and runc. Medians over the runs.
func splitRuns(ctx context.Context, b *bench, running map[*flavor]*daemon,
	run func(f *flavor, address, id string) error) (map[*flavor][]metric, error) {
	timers := map[*flavor]*rpcTimer{}
	for f, d := range running {
		t, err := startRPCTimer(d)
		if err != nil {
			return nil, err
		}
		defer t.close()
		timers[f] = t
	}
	own := map[*flavor][]time.Duration{}
	tasks := map[*flavor][]time.Duration{}
	for i := range splitRunCount {
		for _, f := range b.order(i) {
			if err := run(f, timers[f].address, fmt.Sprintf("split-%d", i)); err != nil {
				return nil, fmt.Errorf("%s, run through the rpc timer: %w", f.name, err)
			}
			var o, t time.Duration
			for _, c := range timers[f].take() {
				switch {
				case !taskCall(c.method):
					o += c.took
				case !strings.HasSuffix(c.method, "/Wait"): // it overlaps Start
					t += c.took
				}
			}
			own[f] = append(own[f], o)
			tasks[f] = append(tasks[f], t)
		}
	}
	out := map[*flavor][]metric{}
	for f := range running {
		out[f] = []metric{
			duration("in daemon-only calls", summarize(own[f]).p50),
			duration("in Tasks calls (shim, runc)", summarize(tasks[f]).p50),
		}
	}
	return out, nil
}

// processCPU returns the user and system time pid has used, from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks of 10ms).
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields start after its ')'.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// busyboxArchive builds, once per bench run, an image of one layer holding
// the host's static busybox and the applets a shell needs.
func (b *bench) busyboxArchive() (string, error) {
	path := filepath.Join(b.tmp, "busybox-image.tar")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	bin, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return "", fmt.Errorf("static busybox for the run image (apt-get install busybox-static): %w", err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))})
	tw.Write(bin)
	for _, applet := range []string{"sh", "true", "echo", "sleep"} {
		tw.WriteHeader(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
	}
	for _, dir := range []string{"proc/", "sys/", "dev/", "tmp/", "etc/"} {
		tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755})
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	layerDigest := fmt.Sprintf("sha256:%x", sha256.Sum256(layer.Bytes()))
	config, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       map[string]any{"Cmd": []string{"/bin/sh"}, "Env": []string{"PATH=/bin"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	blobs := map[string][]byte{layerDigest: layer.Bytes()}
	cfgDigest := fmt.Sprintf("sha256:%x", sha256.Sum256(config))
	blobs[cfgDigest] = config
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfgDigest, "size": len(config)},
		"layers": []map[string]any{{
			"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layerDigest, "size": layer.Len(),
		}},
	})
	mfDigest := fmt.Sprintf("sha256:%x", sha256.Sum256(manifest))
	blobs[mfDigest] = manifest
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"manifests": []map[string]any{{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mfDigest, "size": len(manifest),
			"annotations": map[string]string{"io.containerd.image.name": runImageName},
		}},
	})
	return path, writeOCIArchive(path, index, blobs)
}
