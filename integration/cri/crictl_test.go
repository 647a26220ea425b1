//go:build integration

package cri

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llitfkitfk/containerd/internal/testutil"
)

// The crictl flows a node operator runs, against the daemon under test.

// crictl runs crictl against d and fails the test unless it exits 0.
func crictl(t *testing.T, d *testutil.CRIDaemon, args ...string) string {
	t.Helper()
	out, err := d.CrictlOK(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// crictlJSON runs crictl with args (which ask for -o json) and decodes
// its output.
func crictlJSON(t *testing.T, d *testutil.CRIDaemon, args ...string) map[string]any {
	t.Helper()
	out := crictl(t, d, args...)
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("crictl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

// field walks v along path (object keys, or list indexes as "0", "1"...)
// and returns what it finds there, nil if nothing.
func field(v any, path ...string) any {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func str(v any, path ...string) string {
	s, _ := field(v, path...).(string)
	return s
}

// writeJSON writes v as JSON to a file in dir and returns its path.
func writeJSON(t *testing.T, dir, name string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// podConfig is a pod sandbox config of name, its logs in logDir.
func podConfig(name, logDir string, extra map[string]any) map[string]any {
	c := map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": "cri-test", "uid": name + "-uid", "attempt": 0},
		"hostname":      name + "-host",
		"log_directory": logDir,
		"linux":         map[string]any{},
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// containerConfig is a container config of name running image with
// command (the image's own if none), logging to <name>.log.
func containerConfig(name, image string, command ...string) map[string]any {
	c := map[string]any{
		"metadata": map[string]any{"name": name},
		"image":    map[string]any{"image": image},
		"log_path": name + ".log",
		"linux":    map[string]any{},
	}
	if len(command) > 0 {
		c["command"] = command
	}
	return c
}

// runPod starts a pod of name and a container in it running image with
// command; it returns the pod's and the container's ids.
func runPod(t *testing.T, d *testutil.CRIDaemon, name, image string, podExtra map[string]any, command ...string) (pod, ctr string) {
	t.Helper()
	dir := t.TempDir()
	podFile := writeJSON(t, dir, "pod.json", podConfig(name, filepath.Join(dir, "logs"), podExtra))
	ctrFile := writeJSON(t, dir, "container.json", containerConfig(name+"-app", image, command...))
	crictl(t, d, "pull", image)
	pod = crictl(t, d, "runp", podFile)
	ctr = crictl(t, d, "create", "--no-pull", pod, ctrFile, podFile)
	crictl(t, d, "start", ctr)
	return pod, ctr
}

// podIP is the pod's IP as inspectp reports it, checked to be in the
// test network's subnet.
func podIP(t *testing.T, d *testutil.CRIDaemon, pod string) netip.Addr {
	t.Helper()
	ip := str(crictlJSON(t, d, "inspectp", "-o", "json", pod), "status", "network", "ip")
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		t.Fatalf("pod %s has IP %q: %v", pod, ip, err)
	}
	if !netip.MustParsePrefix(testutil.CRISubnet).Contains(addr) {
		t.Fatalf("pod %s has IP %s, outside the CNI subnet %s", pod, addr, testutil.CRISubnet)
	}
	return addr
}

// eventually retries f until it returns nil, for a minute at most.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func containerState(t *testing.T, d *testutil.CRIDaemon, ctr string) string {
	t.Helper()
	return str(crictlJSON(t, d, "inspect", "-o", "json", ctr), "status", "state")
}

func podState(t *testing.T, d *testutil.CRIDaemon, pod string) string {
	t.Helper()
	return str(crictlJSON(t, d, "inspectp", "-o", "json", pod), "status", "state")
}

// ids is crictl's -q output as a list.
func ids(t *testing.T, d *testutil.CRIDaemon, args ...string) []string {
	t.Helper()
	return strings.Fields(crictl(t, d, append(args, "-q")...))
}

// TestCrictlPodLifecycle drives a pod and its container through every
// state with crictl: runp, create, start, exec, logs, stats, inspect,
// inspectp, stop, rm, stopp, rmp, and the image it ran through images
// and rmi.
func TestCrictlPodLifecycle(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	image := testutil.CRIBusyboxImage

	out := crictl(t, d, "pull", image)
	if !strings.Contains(out, "Image is up to date for sha256:") {
		t.Fatalf("crictl pull %s: %q, want the image's id", image, out)
	}
	imageID := out[strings.Index(out, "sha256:"):]

	podFile := writeJSON(t, dir, "pod.json", podConfig("lifecycle", logDir, nil))
	pod := crictl(t, d, "runp", podFile)
	if got := podState(t, d, pod); got != "SANDBOX_READY" {
		t.Fatalf("pod state after runp: %s, want SANDBOX_READY", got)
	}
	ip := podIP(t, d, pod)
	p := crictlJSON(t, d, "inspectp", "-o", "json", pod)
	if got := str(p, "status", "metadata", "name"); got != "lifecycle" {
		t.Errorf("inspectp metadata name %q, want lifecycle", got)
	}

	ctrFile := writeJSON(t, dir, "container.json", containerConfig("app", image,
		// SIGTERM ignored: stop must kill it when its timeout ends.
		"sh", "-c", "trap '' TERM; echo started; echo oops >&2; i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done"))
	ctr := crictl(t, d, "create", "--no-pull", pod, ctrFile, podFile)
	if got := containerState(t, d, ctr); got != "CONTAINER_CREATED" {
		t.Fatalf("container state after create: %s, want CONTAINER_CREATED", got)
	}
	crictl(t, d, "start", ctr)
	c := crictlJSON(t, d, "inspect", "-o", "json", ctr)
	if got := str(c, "status", "state"); got != "CONTAINER_RUNNING" {
		t.Fatalf("container state after start: %s, want CONTAINER_RUNNING", got)
	}
	digests, _ := field(crictlJSON(t, d, "inspecti", "-o", "json", imageID), "status", "repoDigests").([]any)
	if got := str(c, "status", "imageRef"); !slices.Contains(digests, any(got)) && got != imageID {
		t.Errorf("inspect imageRef %q, want the image's id %s or one of its digests %v", got, imageID, digests)
	}
	if got := str(c, "status", "logPath"); got != filepath.Join(logDir, "app.log") {
		t.Errorf("inspect logPath %q, want %s", got, filepath.Join(logDir, "app.log"))
	}
	if !slices.Contains(ids(t, d, "ps"), ctr) {
		t.Errorf("crictl ps does not list running container %s", ctr)
	}

	// exec: output, the pod's hostname and network, exit codes.
	if got := crictl(t, d, "exec", ctr, "echo", "hello from exec"); got != "hello from exec" {
		t.Errorf("crictl exec echo: %q", got)
	}
	if got := crictl(t, d, "exec", ctr, "hostname"); got != "lifecycle-host" {
		t.Errorf("hostname in the pod: %q, want lifecycle-host", got)
	}
	if got := crictl(t, d, "exec", ctr, "ip", "-4", "-o", "addr", "show", "eth0"); !strings.Contains(got, " "+ip.String()+"/") {
		t.Errorf("eth0 in the pod does not have the pod's IP %s: %q", ip, got)
	}
	// crictl turns any failure into its exit status 1, so the exit
	// code itself shows only in its message.
	stdout, stderr, code, err := d.Crictl("exec", "--sync", ctr, "sh", "-c", "echo before; exit 3")
	if err != nil || code == 0 || !strings.Contains(stderr, "exited with 3") {
		t.Errorf("crictl exec --sync of a command exiting 3: exit %d, %v, stdout %q, stderr %q", code, err, stdout, stderr)
	}
	stdout, stderr, code, err = d.Crictl("exec", ctr, "sh", "-c", "echo before; exit 5")
	if err != nil || code == 0 || stdout != "before\n" || !strings.Contains(stderr, "exit code 5") {
		t.Errorf("crictl exec of a command exiting 5: exit %d, %v, stdout %q, stderr %q", code, err, stdout, stderr)
	}

	// logs: both streams, as crictl reads them back and as the file has
	// them (CRI log format: time stream tag message).
	eventually(t, "crictl logs", func() error {
		stdout, stderr, _, err := d.Crictl("logs", ctr)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(stdout, "started\n") || !strings.Contains(stdout, "line 2\n") || !strings.Contains(stderr, "oops") {
			return fmt.Errorf("stdout %q, stderr %q", stdout, stderr)
		}
		return nil
	})
	if got := crictl(t, d, "logs", "--tail", "1", ctr); !strings.HasPrefix(got, "line ") || strings.Contains(got, "\n") {
		t.Errorf("crictl logs --tail 1: %q, want one line", got)
	}
	logFile, err := os.ReadFile(filepath.Join(logDir, "app.log"))
	if err != nil {
		t.Fatal(err)
	}
	// stdout and stderr are two pipes copied side by side: their lines
	// interleave in the file in no fixed order, but each stream's own
	// lines keep theirs.
	var firstOut, firstErr []string
	for _, line := range strings.Split(strings.TrimSpace(string(logFile)), "\n") {
		f := strings.SplitN(line, " ", 4)
		if len(f) != 4 || f[2] != "F" {
			t.Errorf("log line %q, want <time> <stream> F <text>", line)
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			t.Errorf("log line's time %q: %v", f[0], err)
		}
		switch {
		case f[1] == "stdout" && firstOut == nil:
			firstOut = f
		case f[1] == "stderr" && firstErr == nil:
			firstErr = f
		}
	}
	if firstOut == nil || firstOut[3] != "started" {
		t.Errorf("first stdout line of the log file %q, want started", firstOut)
	}
	if firstErr == nil || firstErr[3] != "oops" {
		t.Errorf("first stderr line of the log file %q, want oops", firstErr)
	}

	// stats: the running container's, with memory in use.
	eventually(t, "crictl stats", func() error {
		s := crictlJSON(t, d, "stats", "-o", "json", "--id", ctr)
		if got := str(s, "stats", "0", "attributes", "id"); got != ctr {
			return fmt.Errorf("stats for %q, want %s", got, ctr)
		}
		if mem := str(s, "stats", "0", "memory", "workingSetBytes", "value"); mem == "" || mem == "0" {
			return fmt.Errorf("working set %q", mem)
		}
		return nil
	})

	// stop, rm: sh as pid 1 ignores SIGTERM, so stop kills it after
	// the timeout.
	crictl(t, d, "stop", "--timeout", "1", ctr)
	c = crictlJSON(t, d, "inspect", "-o", "json", ctr)
	if got := str(c, "status", "state"); got != "CONTAINER_EXITED" {
		t.Fatalf("container state after stop: %s, want CONTAINER_EXITED", got)
	}
	if got := field(c, "status", "exitCode"); got != float64(137) {
		t.Errorf("exit code of the container killed by stop: %v, want 137", got)
	}
	if slices.Contains(ids(t, d, "ps"), ctr) || !slices.Contains(ids(t, d, "ps", "-a"), ctr) {
		t.Errorf("after stop, ps should leave %s out and ps -a list it", ctr)
	}
	crictl(t, d, "rm", ctr)
	if slices.Contains(ids(t, d, "ps", "-a"), ctr) {
		t.Errorf("crictl ps -a lists removed container %s", ctr)
	}
	if _, _, code, _ := d.Crictl("inspect", ctr); code == 0 {
		t.Errorf("crictl inspect of removed container %s succeeds", ctr)
	}

	// A container that exits of itself: its exit code and its output.
	exitFile := writeJSON(t, dir, "exits.json", containerConfig("exits", image, "sh", "-c", "echo bye; exit 7"))
	exits := crictl(t, d, "create", "--no-pull", pod, exitFile, podFile)
	crictl(t, d, "start", exits)
	eventually(t, "container exiting 7", func() error {
		c := crictlJSON(t, d, "inspect", "-o", "json", exits)
		if state, code := str(c, "status", "state"), field(c, "status", "exitCode"); state != "CONTAINER_EXITED" || code != float64(7) {
			return fmt.Errorf("state %s, exit code %v", state, code)
		}
		return nil
	})
	if got := crictl(t, d, "logs", exits); got != "bye" {
		t.Errorf("logs of the exited container: %q", got)
	}

	// stopp stops what still runs; rmp removes the pod and its containers.
	crictl(t, d, "stopp", pod)
	if got := podState(t, d, pod); got != "SANDBOX_NOTREADY" {
		t.Fatalf("pod state after stopp: %s, want SANDBOX_NOTREADY", got)
	}
	crictl(t, d, "rmp", pod)
	if slices.Contains(ids(t, d, "pods"), pod) {
		t.Errorf("crictl pods lists removed pod %s", pod)
	}
	if slices.Contains(ids(t, d, "ps", "-a"), exits) {
		t.Errorf("crictl ps -a lists container %s of removed pod %s", exits, pod)
	}

	// images, rmi.
	imgs := crictlJSON(t, d, "images", "-o", "json")
	found := false
	for _, img := range field(imgs, "images").([]any) {
		if str(img, "id") == imageID {
			found = true
			if tags := field(img, "repoTags"); !slices.Contains(tags.([]any), any(image)) {
				t.Errorf("crictl images: %s has tags %v, want %s", imageID, tags, image)
			}
		}
	}
	if !found {
		t.Fatalf("crictl images does not list %s (%s)", image, imageID)
	}
	crictl(t, d, "rmi", image)
	if slices.Contains(ids(t, d, "images"), imageID) {
		t.Errorf("crictl images lists %s after rmi", imageID)
	}
}

// TestCrictlImages pulls by a short name through the docker.io mirror,
// inspects and removes the image, and fails to pull one no registry has.
func TestCrictlImages(t *testing.T) {
	d := startDaemon(t)
	crictl(t, d, "pull", "busybox")
	img := crictlJSON(t, d, "inspecti", "-o", "json", "busybox")
	if tags := field(img, "status", "repoTags"); tags == nil || !slices.Contains(tags.([]any), any(testutil.CRIDockerBusyboxImage)) {
		t.Errorf("inspecti busybox: tags %v, want %s", tags, testutil.CRIDockerBusyboxImage)
	}
	if digests, _ := field(img, "status", "repoDigests").([]any); len(digests) != 1 || !strings.HasPrefix(digests[0].(string), "docker.io/library/busybox@sha256:") {
		t.Errorf("inspecti busybox: digests %v", digests)
	}
	if got := crictl(t, d, "images", "busybox"); !strings.Contains(got, "docker.io/library/busybox") || !strings.Contains(got, "latest") {
		t.Errorf("crictl images busybox:\n%s", got)
	}
	crictl(t, d, "rmi", "busybox")
	if _, _, code, _ := d.Crictl("inspecti", "busybox"); code == 0 {
		t.Errorf("crictl inspecti busybox succeeds after rmi")
	}

	// An image another client puts in the k8s.io namespace (an operator's
	// `ctr -n k8s.io images import` on an air-gapped node) is the
	// kubelet's at once, and gone once that client removes it.
	img2, err := testutil.BusyboxImage(testutil.Layer{"imported": "yes"})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "imported.tar")
	const imported = "example.com/imported/busybox:1"
	if err := img2.WriteLayout(archive, imported); err != nil {
		t.Fatal(err)
	}
	ctr := func(args ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(repoRoot, "bin", "ctr"), append([]string{"-a", d.Paths.Address, "-n", "k8s.io"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ctr %v: %v\n%s", args, err, out)
		}
	}
	ctr("images", "import", archive)
	eventually(t, "the imported image in crictl images", func() error {
		if out, _, _, _ := d.Crictl("images", imported); !strings.Contains(out, "example.com/imported/busybox") {
			return fmt.Errorf("crictl images:\n%s", out)
		}
		return nil
	})
	ctr("images", "rm", imported)
	eventually(t, "the removed image gone from crictl", func() error {
		if _, _, code, _ := d.Crictl("inspecti", imported); code == 0 {
			return fmt.Errorf("crictl inspecti %s succeeds", imported)
		}
		return nil
	})

	if _, stderr, code, _ := d.Crictl("pull", "registry.k8s.io/no-such-image:1"); code == 0 {
		t.Errorf("pull of an image no registry has succeeds")
	} else if !strings.Contains(stderr, "no-such-image") {
		t.Errorf("pull of a missing image: error does not name it: %s", stderr)
	}
}

// TestCrictlPortForward reaches the nginx stand-in in a pod by the pod's
// IP on the test bridge and through crictl port-forward.
func TestCrictlPortForward(t *testing.T) {
	d := startDaemon(t)
	pod, _ := runPod(t, d, "web", testutil.CRINginxImage, map[string]any{
		"port_mappings": []any{map[string]any{"container_port": 80, "protocol": 0}},
	})
	ip := podIP(t, d, pod)
	eventually(t, "GET from the pod's IP", func() error {
		return getPage("http://" + ip.String() + ":80/")
	})

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := d.CrictlCommand("port-forward", pod, fmt.Sprintf("%d:80", port))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if want := fmt.Sprintf("Forwarding from 127.0.0.1:%d -> 80", port); !strings.Contains(line, want) {
		t.Fatalf("crictl port-forward says %q (%v), want %q", line, err, want)
	}
	go io.Copy(io.Discard, stdout)
	for i := 0; i < 3; i++ {
		if err := getPage(fmt.Sprintf("http://127.0.0.1:%d/", port)); err != nil {
			t.Fatalf("GET %d through port-forward: %v", i, err)
		}
	}
}

// getPage GETs url and wants the nginx stand-in's page.
func getPage(url string) error {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "nginx works") {
		return fmt.Errorf("GET %s: %s %q", url, resp.Status, body)
	}
	return nil
}

// TestCrictlPodSurvivesDaemonKill kills the daemon with SIGKILL under a
// running pod: after a restart the pod is listed, ready, with its IP, its
// container runs and execs, and both are stopped and removed.
func TestCrictlPodSurvivesDaemonKill(t *testing.T) {
	d := startDaemon(t)
	pod, ctr := runPod(t, d, "survivor", testutil.CRIBusyboxImage, nil, "sh", "-c", "echo up; exec sleep 100000")
	ip := podIP(t, d, pod)
	startBefore := startTime(t, crictl(t, d, "exec", ctr, "cat", "/proc/1/stat"))

	d.Kill()
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}

	if !slices.Contains(ids(t, d, "pods", "--state", "ready"), pod) {
		t.Fatalf("after the restart crictl pods --state ready does not list %s:\n%s", pod, crictl(t, d, "pods"))
	}
	if got := podIP(t, d, pod); got != ip {
		t.Errorf("pod IP after the restart %s, before %s", got, ip)
	}
	if !slices.Contains(ids(t, d, "ps", "--state", "running"), ctr) {
		t.Fatalf("after the restart crictl ps does not list running %s:\n%s", ctr, crictl(t, d, "ps", "-a"))
	}
	// The same process, not a new one: pid 1 started when it did.
	if got := startTime(t, crictl(t, d, "exec", ctr, "cat", "/proc/1/stat")); got != startBefore {
		t.Errorf("pid 1 of the container after the restart started at %s, before at %s", got, startBefore)
	}
	if got := crictl(t, d, "exec", ctr, "echo", "still here"); got != "still here" {
		t.Errorf("exec after the restart: %q", got)
	}
	crictl(t, d, "stop", "--timeout", "1", ctr)
	crictl(t, d, "rm", ctr)
	crictl(t, d, "stopp", pod)
	crictl(t, d, "rmp", pod)
	if got := ids(t, d, "pods"); len(got) != 0 {
		t.Errorf("pods left after rmp: %v", got)
	}
}

// startTime is a process's start time (in clock ticks since boot) from its
// /proc/<pid>/stat line.
func startTime(t *testing.T, stat string) string {
	t.Helper()
	// The command name, field 2, is in parentheses and may hold spaces.
	f := strings.Fields(stat[strings.LastIndex(stat, ")")+1:])
	if len(f) < 20 {
		t.Fatalf("short /proc/1/stat: %q", stat)
	}
	return f[19] // field 22
}
