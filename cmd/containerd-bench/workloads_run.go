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
// trivial container, and the CPU the daemon itself spends on each.
var runWorkloads = snapshotterWorkloads("run",
	fmt.Sprintf("ctr run --rm of `true` in a busybox image, %d runs a round", runsPerRound), measureRun)

const (
	runImageName = "bench.example.com/busybox:latest"
	runsPerRound = 20
)

func measureRun(ctx context.Context, b *bench, d *daemon, snapshotter string) ([]metric, error) {
	if !privateRun {
		return nil, errors.New("running containers needs root, for a private /run")
	}
	archive, err := b.busyboxArchive()
	if err != nil {
		return nil, err
	}
	// Importing again unpacks for this snapshotter if it has not yet.
	if _, err := d.ctr(ctx, "images", "import", "--snapshotter", snapshotter, archive); err != nil {
		return nil, err
	}

	// What earlier workloads (the unpack ones' gigabytes) left to write
	// back would otherwise land on whichever daemon runs next.
	syscall.Sync()

	var walls []time.Duration
	cpuBefore, err := processCPU(d.cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	for i := 0; i < runsPerRound; i++ {
		id := fmt.Sprintf("run-%d-%d", time.Now().UnixNano(), i)
		start := time.Now()
		if _, err := d.ctr(ctx, "run", "--rm", "--snapshotter", snapshotter, runImageName, id, "true"); err != nil {
			return nil, err
		}
		walls = append(walls, time.Since(start))
	}
	cpuAfter, err := processCPU(d.cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	s := summarize(walls)
	return []metric{
		duration("run --rm p50", s.p50),
		duration("daemon CPU per run", (cpuAfter-cpuBefore)/runsPerRound),
	}, nil
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
