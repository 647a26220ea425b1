package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/llitfkitfk/containerd/internal/testutil"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The cri workload times a pod's life through the CRI, as a kubelet drives
// it: RunPodSandbox, CreateContainer, StartContainer, StopContainer,
// RemoveContainer, StopPodSandbox, RemovePodSandbox, each call timed by
// itself over the daemon's gRPC socket. Theirs is containerd 2.x, not the
// distribution's 1.6, whose CRI cannot read this config; both daemons get
// the same CRI section, the same images (imported before anything is
// timed), the same CNI conflist and plugins, and the same runc.
//
// Each daemon runs in a network namespace of its own, with its own bridge
// of the same name and subnet, so that neither touches the host's network
// and the two never share a bridge or an address range.
var (
	criTheirsPath = flag.String("cri-theirs", "",
		"the containerd 2.x the cri workload compares with (default: containerd2/containerd beside -ours)")
	criBinDir = flag.String("cri-bin", "",
		"the directory of runc and cni/ (the CNI plugins) for the cri workload (default: cri beside -ours)")
	criPause = flag.String("cri-pause", "./internal/testimage/cri/pause",
		"the Go package of the sandbox image's pause program, built with `go build` in the current directory")
	criPods = flag.Int("cri-pods", 10, "pods per round and daemon in the cri workload")
)

var criWorkload = &workload{
	name:  "cri",
	about: "a pod of one busybox container through the CRI's gRPC API, each call timed (theirs: containerd 2.x), pods alternating between the daemons",
	params: func(o options) string {
		return fmt.Sprintf("%d pods each (-rounds × -cri-pods); p50 and p90 over all pods", o.rounds*(*criPods))
	},
	compare: compareCRI,
}

const (
	criPauseImage   = "bench.example.com/pause:bench"
	criNamespace    = "k8s.io"
	criStopTimeout  = 10 // seconds; the container exits on SIGTERM at once
	criCallDeadline = time.Minute
)

// criSteps are the calls of one pod's life, in order.
var criSteps = []string{"RunPodSandbox", "CreateContainer", "StartContainer", "StopContainer",
	"RemoveContainer", "StopPodSandbox", "RemovePodSandbox"}

// criDaemon is one daemon of the cri workload and its CRI clients.
type criDaemon struct {
	*daemon
	conn    *grpc.ClientConn
	rt      runtimeapi.RuntimeServiceClient
	img     runtimeapi.ImageServiceClient
	logDir  string
	samples map[string][]time.Duration // by step, and "pod start", "container start"
	cpu     time.Duration
	pods    int
}

func compareCRI(ctx context.Context, b *bench) (*table, error) {
	if !privateRun {
		return nil, errors.New("running pods needs root, for a private /run")
	}
	if *criPods < 1 {
		return nil, errors.New("-cri-pods must be at least 1")
	}
	theirsPath, binDir := *criTheirsPath, *criBinDir
	if theirsPath == "" {
		theirsPath = filepath.Join(filepath.Dir(b.ours.path), "containerd2", "containerd")
	}
	if binDir == "" {
		binDir = filepath.Join(filepath.Dir(b.ours.path), "cri")
	}
	theirsShim, err := resolveShim("", theirsPath)
	if err != nil {
		return nil, fmt.Errorf("containerd 2.x for the cri workload (-cri-theirs; `make test-deps` builds bin/containerd2): %w", err)
	}
	runc := filepath.Join(binDir, "runc")
	cniBin := filepath.Join(binDir, "cni")
	for _, p := range []string{runc, filepath.Join(cniBin, "bridge"), filepath.Join(cniBin, "host-local"),
		filepath.Join(cniBin, "portmap"), filepath.Join(cniBin, "loopback")} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("the cri workload needs runc and the CNI plugins (-cri-bin; `make cri-deps` builds bin/cri): %w", err)
		}
	}
	// CNI keeps its results under /var/lib/cni whatever the config says:
	// here that is a tmpfs of the bench's mount namespace.
	if err := os.MkdirAll("/var/lib/cni", 0o755); err != nil {
		return nil, err
	}
	if err := syscall.Mount("tmpfs", "/var/lib/cni", "tmpfs", 0, "mode=755"); err != nil {
		return nil, fmt.Errorf("mount private /var/lib/cni: %w", err)
	}
	defer syscall.Unmount("/var/lib/cni", syscall.MNT_DETACH)

	busybox, err := b.busyboxArchive()
	if err != nil {
		return nil, err
	}
	pause, err := b.pauseArchive(ctx)
	if err != nil {
		return nil, err
	}
	ours := b.ours
	theirs := &flavor{name: "theirs", label: "cri-theirs", path: theirsPath, shim: theirsShim}
	flavors := []*flavor{ours, theirs}
	running := map[*flavor]*criDaemon{}
	for _, f := range flavors {
		cd, err := b.startCRI(ctx, f, runc, cniBin, pause, busybox)
		if err != nil {
			return nil, err
		}
		defer cd.close()
		running[f] = cd
	}
	theirs.label = versionLabel(running[theirs].version, theirs.label)
	fmt.Printf("cri: theirs is %s (Version %q)\n", theirs.path, running[theirs].version)

	// One untimed pod each brings the shim, runc and the CNI plugins into
	// the page cache and lets each daemon make its bridge; the imports'
	// writes are flushed so that they land on neither daemon's pods.
	for _, f := range flavors {
		if err := running[f].pod(ctx, "warm-up", false); err != nil {
			return nil, fmt.Errorf("%s, warm-up: %w\n--- end of its log ---\n%s", f.name, err, running[f].tail())
		}
		if err := running[f].checkClean(ctx); err != nil {
			return nil, fmt.Errorf("%s, warm-up: %w", f.name, err)
		}
	}
	syscall.Sync()

	// The machine's pace drifts within seconds by more than the daemons
	// differ (other work shares its cores), so the pods alternate between
	// the daemons one by one, each pair led by the other daemon in turn;
	// after each round both must have nothing left.
	cpu0 := map[*flavor]time.Duration{}
	for _, f := range flavors {
		if cpu0[f], err = processCPU(running[f].cmd.Process.Pid); err != nil {
			return nil, err
		}
	}
	for i := range b.opts.rounds {
		for j := range *criPods {
			order := flavors
			if (i*(*criPods)+j)%2 == 1 {
				order = []*flavor{theirs, ours}
			}
			for _, f := range order {
				cd := running[f]
				if err := cd.pod(ctx, fmt.Sprintf("r%d-p%d", i, j), true); err != nil {
					return nil, fmt.Errorf("%s, round %d, pod %d: %w\n--- end of its log ---\n%s", f.name, i+1, j+1, err, cd.tail())
				}
				cd.pods++
			}
		}
		for _, f := range flavors {
			if err := running[f].checkClean(ctx); err != nil {
				return nil, fmt.Errorf("%s, round %d: %w", f.name, i+1, err)
			}
		}
	}
	for _, f := range flavors {
		c, err := processCPU(running[f].cmd.Process.Pid)
		if err != nil {
			return nil, err
		}
		running[f].cpu = c - cpu0[f]
	}
	return tabulate(map[*flavor][]metric{ours: running[ours].metrics(), theirs: running[theirs].metrics()}, ours, theirs)
}

// startCRI starts a daemon of flavor f with the CRI config in a network
// namespace of its own, and connects the CRI clients.
func (b *bench) startCRI(ctx context.Context, f *flavor, runc, cniBin string, archives ...string) (*criDaemon, error) {
	dir := filepath.Join(b.tmp, "cri-"+f.name)
	confDir := filepath.Join(dir, "cni-conf")
	logDir := filepath.Join(dir, "pod-logs")
	for _, d := range []string{confDir, logDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-bench.conflist"), []byte(testutil.CRIConflist("bench", filepath.Join(dir, "ipam"))), 0o644); err != nil {
		return nil, err
	}
	extra := criConfig(filepath.Join(dir, "opt"), runc, cniBin, confDir)
	first, err := startInNetNS(func() (*daemon, error) { return b.start(ctx, f, extra) })
	if err != nil {
		return nil, err
	}
	// The images go in with ctr, through a daemon without its CRI; then
	// the daemon starts again on the same directory with it, so that both
	// daemons' CRIs start with the images in place.
	for _, archive := range archives {
		cmd := exec.CommandContext(ctx, *distroCtrPath, "-a", first.address, "-n", criNamespace,
			"images", "import", "--snapshotter", "overlayfs", archive)
		if out, err := cmd.CombinedOutput(); err != nil {
			first.stop()
			return nil, fmt.Errorf("%s: ctr images import %s: %w\n%s", f.name, archive, err, out)
		}
	}
	first.keep = true
	if err := first.stop(); err != nil {
		return nil, err
	}
	// launch makes the shim's directory anew.
	if err := os.RemoveAll(filepath.Join(first.dir, "shim-bin")); err != nil {
		return nil, err
	}
	d, err := startInNetNS(func() (*daemon, error) {
		return b.launch(ctx, &daemon{flavor: f, dir: first.dir, cri: true}, extra)
	})
	if err != nil {
		return nil, err
	}
	conn, err := d.dial()
	if err != nil {
		d.stop()
		return nil, err
	}
	cd := &criDaemon{daemon: d, conn: conn, rt: runtimeapi.NewRuntimeServiceClient(conn),
		img: runtimeapi.NewImageServiceClient(conn), logDir: logDir, samples: map[string][]time.Duration{}}
	// The CRI plugin may come up after the socket answers Version.
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := cd.rt.Status(cctx, &runtimeapi.StatusRequest{})
		cancel()
		if err == nil && criReady(st.GetStatus()) {
			break
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			cd.close()
			return nil, fmt.Errorf("%s: the CRI is not ready after 30s (Status: %v, %v)\n--- end of its log ---\n%s", f.name, st, err, d.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cd.waitImages(ctx); err != nil {
		cd.close()
		return nil, fmt.Errorf("%s: %w", f.name, err)
	}
	return cd, nil
}

// criReady tells whether the runtime and network conditions are true.
func criReady(st *runtimeapi.RuntimeStatus) bool {
	ready := 0
	for _, c := range st.GetConditions() {
		if (c.Type == runtimeapi.RuntimeReady || c.Type == runtimeapi.NetworkReady) && c.Status {
			ready++
		}
	}
	return ready == 2
}

// startInNetNS runs start, which starts a daemon, with the daemon in a new network namespace
// whose loopback is up (the stream server listens on 127.0.0.1). The
// namespace is made on a thread of its own, which the daemon and `ip` are
// forked from. The thread lives, locked to its goroutine, until the daemon
// exits: the daemon's parent-death signal follows the thread that forked
// it, not the process. Then it ends with its goroutine, so that no other
// goroutine ever runs in the namespace.
func startInNetNS(start func() (*daemon, error)) (*daemon, error) {
	type result struct {
		d   *daemon
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
		if err := syscall.Unshare(syscall.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("new network namespace: %w", err)}
			return
		}
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			ch <- result{err: fmt.Errorf("ip link set lo up: %v: %s", err, out)}
			return
		}
		d, err := start()
		ch <- result{d, err}
		if err == nil {
			<-d.exited
		}
	}()
	r := <-ch
	return r.d, r.err
}

// criConfig is the config both daemons get beyond the base one: the same
// CRI section (containerd's version 2 layout, which containerd 2.x
// migrates), no NRI (ours has none), and an opt directory in the temp dir.
func criConfig(opt, runc, cniBin, cniConf string) string {
	const cri = `plugins."io.containerd.grpc.v1.cri"`
	var s strings.Builder
	fmt.Fprintf(&s, "[plugins.\"io.containerd.internal.v1.opt\"]\n  path = %q\n\n", opt)
	fmt.Fprintf(&s, "[plugins.\"io.containerd.nri.v1.nri\"]\n  disable = true\n\n")
	// restrict_oom_score_adj: this host does not let a process lower its
	// oom_score_adj, which a pod's default spec would.
	fmt.Fprintf(&s, "[%s]\n  sandbox_image = %q\n  restrict_oom_score_adj = true\n", cri, criPauseImage)
	fmt.Fprintf(&s, "  stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n")
	fmt.Fprintf(&s, "[%s.containerd]\n  snapshotter = \"overlayfs\"\n  default_runtime_name = \"runc\"\n", cri)
	fmt.Fprintf(&s, "[%s.containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n", cri)
	fmt.Fprintf(&s, "[%s.containerd.runtimes.runc.options]\n  BinaryName = %q\n", cri, runc)
	fmt.Fprintf(&s, "[%s.cni]\n  bin_dir = %q\n  conf_dir = %q\n", cri, cniBin, cniConf)
	return s.String()
}

// waitImages waits until the CRI lists both imported images: containerd
// 2.x learns of them from the image events, a moment after the import.
func (cd *criDaemon) waitImages(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range []string{criPauseImage, runImageName} {
		for {
			r, err := cd.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: name}})
			if err == nil && r.GetImage() != nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the CRI does not know image %s 30s after its import (%v)", name, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// pod runs one pod's life; with record, it keeps each call's time.
func (cd *criDaemon) pod(ctx context.Context, name string, record bool) error {
	ctx, cancel := context.WithTimeout(ctx, criCallDeadline)
	defer cancel()
	took := map[string]time.Duration{}
	timed := func(step string, call func() error) error {
		t0 := time.Now()
		err := call()
		took[step] = time.Since(t0)
		if err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		return nil
	}
	uid := fmt.Sprintf("%x", sha256.Sum256([]byte(cd.dir+name)))[:32]
	podConfig := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "bench-" + name, Uid: uid, Namespace: "bench"},
		Hostname:     "bench-" + name,
		LogDirectory: filepath.Join(cd.logDir, name),
		Linux:        &runtimeapi.LinuxPodSandboxConfig{},
	}
	var podID, ctrID string
	if err := timed("RunPodSandbox", func() error {
		r, err := cd.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podConfig})
		podID = r.GetPodSandboxId()
		return err
	}); err != nil {
		return err
	}
	if err := timed("CreateContainer", func() error {
		r, err := cd.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
			PodSandboxId:  podID,
			SandboxConfig: podConfig,
			Config: &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: "busybox"},
				Image:    &runtimeapi.ImageSpec{Image: runImageName},
				// Exits on SIGTERM at once: wait returns on a trapped
				// signal.
				Command: []string{"sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"},
				LogPath: "busybox.log",
				Linux:   &runtimeapi.LinuxContainerConfig{},
			},
		})
		ctrID = r.GetContainerId()
		return err
	}); err != nil {
		return err
	}
	if err := timed("StartContainer", func() error {
		_, err := cd.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: ctrID})
		return err
	}); err != nil {
		return err
	}
	// Untimed: the container is running once StartContainer returns.
	st, err := cd.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctrID})
	if err != nil {
		return fmt.Errorf("ContainerStatus: %w", err)
	}
	if s := st.GetStatus().GetState(); s != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return fmt.Errorf("container %s is %v after StartContainer", ctrID, s)
	}
	steps := []struct {
		step string
		call func() error
	}{
		{"StopContainer", func() error {
			_, err := cd.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ctrID, Timeout: criStopTimeout})
			return err
		}},
		{"RemoveContainer", func() error {
			_, err := cd.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: ctrID})
			return err
		}},
		{"StopPodSandbox", func() error {
			_, err := cd.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID})
			return err
		}},
		{"RemovePodSandbox", func() error {
			_, err := cd.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID})
			return err
		}},
	}
	for _, s := range steps {
		if err := timed(s.step, s.call); err != nil {
			return err
		}
	}
	if record {
		for step, d := range took {
			cd.samples[step] = append(cd.samples[step], d)
		}
		cd.samples["pod start"] = append(cd.samples["pod start"], took["RunPodSandbox"])
		cd.samples["container start"] = append(cd.samples["container start"], took["CreateContainer"]+took["StartContainer"])
		var all time.Duration
		for _, d := range took {
			all += d
		}
		cd.samples["whole life"] = append(cd.samples["whole life"], all)
	}
	return nil
}

// checkClean fails unless the daemon has no pod or container left and no
// pod network namespace is left in /run/netns (the bench's own /run).
func (cd *criDaemon) checkClean(ctx context.Context) error {
	pods, err := cd.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("ListPodSandbox: %w", err)
	}
	ctrs, err := cd.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return fmt.Errorf("ListContainers: %w", err)
	}
	if n, m := len(pods.GetItems()), len(ctrs.GetContainers()); n+m > 0 {
		return fmt.Errorf("%d pods and %d containers left after removal", n, m)
	}
	if ns, _ := os.ReadDir("/run/netns"); len(ns) > 0 {
		var names []string
		for _, e := range ns {
			names = append(names, e.Name())
		}
		return fmt.Errorf("network namespaces left in /run/netns: %s", strings.Join(names, " "))
	}
	return nil
}

// metrics are the p50 and p90 of each step, and the totals.
func (cd *criDaemon) metrics() []metric {
	var ms []metric
	for _, step := range append([]string{"pod start", "container start", "whole life"}, criSteps...) {
		s := summarize(cd.samples[step])
		ms = append(ms, duration(step+" p50", s.p50), duration(step+" p90", s.p90))
	}
	cpu := 0.0
	if cd.pods > 0 {
		cpu = (cd.cpu / time.Duration(cd.pods)).Seconds()
	}
	return append(ms, metric{name: "daemon CPU per pod", unit: seconds, value: cpu})
}

func (cd *criDaemon) close() {
	if cd.conn != nil {
		cd.conn.Close()
	}
	cd.stop()
}

// pauseArchive builds, once per bench run, the sandbox image: the pause
// program of the CRI tests (static, built here), run as 65535 as
// Kubernetes' pause image is.
func (b *bench) pauseArchive(ctx context.Context) (string, error) {
	path := filepath.Join(b.tmp, "pause-image.tar")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	bin := filepath.Join(b.tmp, "pause")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, *criPause)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the pause program %s (-cri-pause; run the bench in the repository): %v\n%s", *criPause, err, out)
	}
	body, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	tw.WriteHeader(&tar.Header{Name: "pause", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(body))})
	tw.Write(body)
	if err := tw.Close(); err != nil {
		return "", err
	}
	config := map[string]any{"Entrypoint": []string{"/pause"}, "User": "65535:65535", "WorkingDir": "/"}
	return path, writeImageArchive(path, criPauseImage, layer.Bytes(), config)
}

// writeImageArchive writes an OCI archive of one image of one layer,
// named name.
func writeImageArchive(path, name string, layer []byte, config map[string]any) error {
	layerDigest := fmt.Sprintf("sha256:%x", sha256.Sum256(layer))
	cfg, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       config,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	cfgDigest := fmt.Sprintf("sha256:%x", sha256.Sum256(cfg))
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfgDigest, "size": len(cfg)},
		"layers": []map[string]any{{
			"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layerDigest, "size": len(layer),
		}},
	})
	mfDigest := fmt.Sprintf("sha256:%x", sha256.Sum256(manifest))
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"manifests": []map[string]any{{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mfDigest, "size": len(manifest),
			"annotations": map[string]string{"io.containerd.image.name": name},
		}},
	})
	return writeOCIArchive(path, index, map[string][]byte{layerDigest: layer, cfgDigest: cfg, mfDigest: manifest})
}
