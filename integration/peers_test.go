//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llitfkitfk/containerd/internal/testutil"
)

// Tests against containerd's own peers: our daemon running containers
// through containerd 2.x's shim, and containerd's daemons (the
// distribution's 1.6 and 2.x) running them through the shim under test.
// containerd 2.x's binaries are built into bin/containerd2 by
// script/containerd2.sh, which `make test` runs.

// distroContainerd is the distribution's containerd 1.6.
const distroContainerd = "/usr/bin/containerd"

// distroCtr is the distribution's ctr 1.6.
const distroCtr = "/usr/bin/ctr"

func repoPath(t *testing.T, elem ...string) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(append([]string{root}, elem...)...)
}

// containerd2 returns the path of containerd 2.x's binary name.
func containerd2(t *testing.T, name string) string {
	t.Helper()
	path := repoPath(t, "bin", "containerd2", name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("containerd 2.x's %s is not built: %v (script/containerd2.sh builds it; `make test` runs it)", name, err)
	}
	return path
}

// shimUnderTest is the shim that the tests of containerd's daemons run
// containers through: the one every test uses (see TestMain), ours unless
// $CONTAINERD_SHIM names another. Naming containerd's own shims there
// (/usr/bin/containerd-shim-runc-v2, bin/containerd2/containerd-shim-runc-v2)
// validates the harness itself: each then fails under the other
// generation's daemon.
func shimUnderTest(t *testing.T) string {
	t.Helper()
	return testShim
}

func needPrivateRun(t *testing.T) {
	t.Helper()
	if !privateRun {
		t.Skip("running containers needs root, for a private /run")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatal("runc not installed (`make test` installs it)")
	}
}

// ctl drives one ctr binary against one daemon, in runNamespace.
type ctl struct {
	t       *testing.T
	ctr     string
	address string
	// v2 is set for containerd 2.x's ctr, which imports through the
	// transfer service unless told --local.
	v2  bool
	log *bytes.Buffer // the daemon's, for failures
}

// run runs ctr and returns its stdout and exit status; what it writes on
// stderr (where containerd 2.x's ctr also warns of cgroup v1) is logged
// when it fails.
func (c *ctl) run(args ...string) (string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.ctr, append([]string{"-a", c.address, "-n", runNamespace}, args...)...)
	out, stderr, code, err := testutil.CommandOutput(cmd)
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s%s\ndaemon log:\n%s", c.ctr, strings.Join(args, " "), err, out, stderr, c.log)
	}
	if code != 0 && stderr != "" {
		c.t.Logf("%s %s: exit status %d, stderr:\n%s", filepath.Base(c.ctr), strings.Join(args, " "), code, stderr)
	}
	return out, code
}

// must runs ctr and fails the test unless it succeeds.
func (c *ctl) must(args ...string) string {
	c.t.Helper()
	out, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("%s %s: exit status %d\n%s\ndaemon log:\n%s", c.ctr, strings.Join(args, " "), code, out, c.log)
	}
	return out
}

func (c *ctl) importImage(archive string) {
	c.t.Helper()
	args := []string{"images", "import"}
	if c.v2 {
		args = append(args, "--local")
	}
	c.must(append(args, archive)...)
	if out := c.must("images", "ls", "-q"); !strings.Contains(out, busyboxImage) {
		c.t.Fatalf("%s not imported:\n%s", busyboxImage, out)
	}
}

// tasks returns what `tasks ls` shows: each task's pid and status.
func (c *ctl) tasks() map[string]task {
	c.t.Helper()
	tasks := map[string]task{}
	for _, line := range strings.Split(c.must("tasks", "ls"), "\n")[1:] {
		if f := strings.Fields(line); len(f) == 3 {
			pid, _ := strconv.Atoi(f[1])
			tasks[f[0]] = task{pid: pid, status: f[2]}
		}
	}
	return tasks
}

// status returns the status `tasks ls` shows for id, "" if none.
func (c *ctl) status(id string) string {
	c.t.Helper()
	return c.tasks()[id].status
}

func (c *ctl) awaitStatus(id, want string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := c.status(id)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("task %s is %q, not %s\ndaemon log:\n%s", id, got, want, c.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runScenarios runs containers through c: ctr run --rm, and ctr run -d
// with exec, metrics, kill and delete. address is the daemon's, by which
// its shims are found: every task must run under shim, and no shim and no
// mount under state may be left at the end.
func runScenarios(t *testing.T, c *ctl, prefix, shim, address, state string) {
	t.Helper()
	wantExe, err := filepath.EvalSymlinks(shim)
	if err != nil {
		t.Fatal(err)
	}

	if out, code := c.run("run", "--rm", busyboxImage, prefix+"-echo", "echo", "hello"); code != 0 || out != "hello\n" {
		t.Fatalf("run --rm echo: exit status %d, output %q; want 0, \"hello\\n\"\ndaemon log:\n%s", code, out, c.log)
	}
	if out, code := c.run("run", "--rm", busyboxImage, prefix+"-true", "true"); code != 0 || out != "" {
		t.Fatalf("run --rm true: exit status %d, output %q\ndaemon log:\n%s", code, out, c.log)
	}
	if out, code := c.run("run", "--rm", busyboxImage, prefix+"-exit3", "sh", "-c", "exit 3"); code != 3 {
		t.Fatalf("run --rm exit 3: exit status %d, want 3\n%s", code, out)
	}

	id := prefix + "-long"
	c.must("run", "-d", busyboxImage, id, "sleep", "1000")
	c.awaitStatus(id, "RUNNING")
	pids := testutil.ShimPids(address)
	if len(pids) != 1 {
		t.Fatalf("%d shims serve the daemon with one task, want 1", len(pids))
	}
	if exe := testutil.Exe(pids[0]); exe != wantExe {
		t.Fatalf("task runs under shim %s, want %s", exe, wantExe)
	}
	if out, code := c.run("tasks", "exec", "--exec-id", "e1", id, "sh", "-c", "exit 5"); code != 5 {
		t.Errorf("tasks exec exit 5: exit status %d, want 5\n%s", code, out)
	}
	if out, code := c.run("tasks", "exec", "--exec-id", "e2", id, "echo", "exec'd"); code != 0 || out != "exec'd\n" {
		t.Errorf("tasks exec echo: exit status %d, output %q", code, out)
	}
	// ctr decodes the shim's cgroup metrics into a table; an Any of a
	// type it does not know would fail the command.
	metrics := c.must("tasks", "metrics", id)
	for _, want := range []string{id, "memory.", "pids."} {
		if !strings.Contains(metrics, want) {
			t.Errorf("tasks metrics lacks %q:\n%s", want, metrics)
		}
	}
	c.must("tasks", "kill", "--signal", "SIGKILL", id)
	c.awaitStatus(id, "STOPPED")
	c.must("tasks", "delete", id)
	c.must("containers", "rm", id)
	if out := c.must("tasks", "ls", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("tasks left:\n%s", out)
	}

	deadline := time.Now().Add(10 * time.Second)
	for len(testutil.ShimPids(address)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("shims %v still run with no task left", testutil.ShimPids(address))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if mounts := testutil.MountsUnder(state); len(mounts) > 0 {
		t.Errorf("mounts left under %s: %v", state, mounts)
	}
}

// peer is one of containerd's daemons on temporary paths, with a shim
// first on its PATH.
type peer struct {
	t *testing.T
	testutil.DaemonPaths
	dir string
	log *bytes.Buffer
	*testutil.Process
}

// startPeer starts containerd's daemon binary, of config format version,
// on paths under a new temporary directory, with shim first on its PATH,
// and waits until it serves. Cleanup stops it, kills what shims it left,
// detaches what mounts they left and removes the directory.
func startPeer(t *testing.T, binary string, version int, shim string) *peer {
	t.Helper()
	dir, err := os.MkdirTemp("", "peer")
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, DaemonPaths: testutil.NewDaemonPaths(dir), dir: dir, log: &bytes.Buffer{}}
	p.Debug = ""
	t.Cleanup(p.cleanup)
	if err := os.WriteFile(p.Config, []byte(testutil.PeerConfigText(p.DaemonPaths, version)), 0o644); err != nil {
		t.Fatal(err)
	}
	shimDir := filepath.Join(dir, "shim")
	if err := testutil.ShimDir(shimDir, shim); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "--config", p.Config)
	// containerd 2.x looks for a shim in its working directory first.
	cmd.Dir = shimDir
	cmd.Env = append(os.Environ(), "PATH="+shimDir+":"+os.Getenv("PATH"))
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if p.Process, err = testutil.StartProcess(cmd); err != nil {
		t.Fatal(err)
	}
	if err := testutil.WaitSocket(p.Address, 30*time.Second, p.Exited); err != nil {
		t.Fatalf("%s: %v\n%s", binary, err, p.log)
	}
	return p
}

// sweepAfter has what the daemon d leaves when a test fails, its shims and
// their mounts, removed after d is stopped.
func sweepAfter(t *testing.T, d *daemon) {
	t.Cleanup(func() {
		if n := testutil.KillShims(d.Address); n > 0 {
			t.Logf("killed %d shims left by the daemon", n)
			time.Sleep(100 * time.Millisecond)
		}
		if mounts := testutil.UnmountUnder(d.dir); len(mounts) > 0 {
			t.Logf("detached mounts left: %v", mounts)
		}
	})
}

// restartWith starts a new daemon on d's paths and config with env, as
// restart does without.
func restartWith(d *daemon, env ...string) *daemon {
	d.t.Helper()
	d2 := &daemon{t: d.t, dir: d.dir, DaemonPaths: d.DaemonPaths, log: d.log}
	d2.start(env...)
	return d2
}

func (p *peer) cleanup() {
	if p.Process != nil && !p.Stop(10*time.Second) {
		p.t.Logf("%s had to be killed", p.Cmd.Path)
	}
	if n := testutil.KillShims(p.Address); n > 0 {
		p.t.Logf("killed %d shims left by the daemon", n)
		time.Sleep(100 * time.Millisecond)
	}
	if mounts := testutil.UnmountUnder(p.dir); len(mounts) > 0 {
		p.t.Logf("detached mounts left: %v", mounts)
	}
	os.RemoveAll(p.dir)
}

// TestPeerContainerd2ShimUnderOurDaemon runs containers with our daemon
// through containerd 2.x's shim (which takes only the bootstrap protocol
// and serves task API v3), driven by the distribution's ctr and by
// containerd 2.x's.
func TestPeerContainerd2ShimUnderOurDaemon(t *testing.T) {
	needPrivateRun(t)
	shim := containerd2(t, "containerd-shim-runc-v2")
	ctr2 := containerd2(t, "ctr")
	shimDir := filepath.Join(t.TempDir(), "shim")
	if err := testutil.ShimDir(shimDir, shim); err != nil {
		t.Fatal(err)
	}
	archive := buildBusyboxArchive(t, t.TempDir(), busyboxImage)
	d := newDaemon(t, "")
	sweepAfter(t, d)
	d.start("PATH=" + shimDir + ":" + os.Getenv("PATH"))

	for _, c := range []struct {
		name string
		ctr  string
		v2   bool
	}{
		{"ctr1.6", distroCtr, false},
		{"ctr2", ctr2, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctl := &ctl{t: t, ctr: c.ctr, address: d.Address, v2: c.v2, log: d.log}
			ctl.importImage(archive)
			runScenarios(t, ctl, strings.ReplaceAll(c.name, ".", ""), shim, d.Address, d.State)
		})
	}
}

// TestPeerContainerd16 runs containers with the distribution's containerd
// 1.6 through the shim under test, driven by the distribution's ctr and by
// the ctr under test: our client against containerd's daemon.
func TestPeerContainerd16(t *testing.T) {
	needPrivateRun(t)
	shim := shimUnderTest(t)
	if _, err := os.Stat(distroContainerd); err != nil {
		t.Fatalf("%v (`make test` installs the distribution's containerd)", err)
	}
	p := startPeer(t, distroContainerd, 2, shim)
	archive := buildBusyboxArchive(t, t.TempDir(), busyboxImage)
	for _, c := range []struct{ name, ctr string }{{"ctr1.6", distroCtr}, {"ours", ctrBinary}} {
		t.Run(c.name, func(t *testing.T) {
			ctl := &ctl{t: t, ctr: c.ctr, address: p.Address, log: p.log}
			clientScenarios(t, ctl, "1.6.")
			ctl.importImage(archive)
			runScenarios(t, ctl, "c16"+strings.ReplaceAll(c.name, ".", ""), shim, p.Address, p.State)
			ctl.must("images", "rm", busyboxImage)
		})
	}
}

// TestPeerContainerd2 runs containers with containerd 2.x's daemon through
// the shim under test, driven by containerd 2.x's ctr and by the ctr under
// test.
func TestPeerContainerd2(t *testing.T) {
	needPrivateRun(t)
	shim := shimUnderTest(t)
	p := startPeer(t, containerd2(t, "containerd"), 3, shim)
	archive := buildBusyboxArchive(t, t.TempDir(), busyboxImage)
	for _, c := range []struct{ name, ctr string }{{"ctr2", containerd2(t, "ctr")}, {"ours", ctrBinary}} {
		t.Run(c.name, func(t *testing.T) {
			ctl := &ctl{t: t, ctr: c.ctr, address: p.Address, v2: true, log: p.log}
			clientScenarios(t, ctl, "2.")
			ctl.importImage(archive)
			runScenarios(t, ctl, "c2"+c.name, shim, p.Address, p.State)
			ctl.must("images", "rm", busyboxImage)
		})
	}
}

// clientScenarios checks what a client sees of a daemon beyond containers:
// the server's version (starting with serverVersion), namespaces, and an
// event stream that shows a namespace being made and removed.
func clientScenarios(t *testing.T, c *ctl, serverVersion string) {
	t.Helper()
	version := c.must("version")
	if !regexp.MustCompile(`(?s)^Client:\n  Version:  \S+\n  Revision: \S*\n  Go version: go\S+\n\nServer:\n  Version:  v?` +
		regexp.QuoteMeta(serverVersion) + `\S*\n  Revision: \S*\n  UUID: [0-9a-f-]{36}\n$`).MatchString(version) {
		t.Errorf("version says:\n%s", version)
	}

	ns := "client-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	ns = regexp.MustCompile(`[^a-z0-9-]`).ReplaceAllString(ns, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events := exec.CommandContext(ctx, c.ctr, "-a", c.address, "events")
	stdout, err := events.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Start(); err != nil {
		t.Fatal(err)
	}
	defer events.Wait()
	defer cancel()
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		for s := bufio.NewScanner(stdout); s.Scan(); {
			lines <- s.Text()
		}
	}()
	// ctr does not say when its subscription is in place: make and remove
	// namespaces until the stream shows one of them made and removed.
	var seen []string
	for i := 0; ; i++ {
		name := fmt.Sprintf("%s-%d", ns, i)
		c.must("namespaces", "create", name, "k=v")
		if ls := c.must("namespaces", "ls"); !regexp.MustCompile(`(?m)^` + name + `\s+k=v\s*$`).MatchString(ls) {
			t.Fatalf("namespaces ls lacks %s with its label:\n%s", name, ls)
		}
		c.must("namespaces", "rm", name)
		deadline := time.After(500 * time.Millisecond)
	wait:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("events ended; saw:\n%s", strings.Join(seen, "\n"))
				}
				seen = append(seen, l)
				if strings.Contains(l, "/namespaces/delete") && strings.Contains(l, name) {
					return
				}
			case <-deadline:
				break wait
			case <-ctx.Done():
				t.Fatalf("no /namespaces/delete event in 30s; saw:\n%s", strings.Join(seen, "\n"))
			}
		}
	}
}

// TestPeerContainerd2ShimGroup runs a group of tasks (one sandbox id) with
// our daemon on one containerd 2.x shim: each task is served over its own
// connection; a daemon killed with -9 takes all of them back on restart;
// deleting one leaves the shim serving the others; the shim killed with
// -9 takes the rest, which the daemon cleans up after (the shim's delete
// kills their processes and unmounts their root filesystems).
func TestPeerContainerd2ShimGroup(t *testing.T) {
	needPrivateRun(t)
	shim := containerd2(t, "containerd-shim-runc-v2")
	shimDir := filepath.Join(t.TempDir(), "shim")
	if err := testutil.ShimDir(shimDir, shim); err != nil {
		t.Fatal(err)
	}
	d := newDaemon(t, "")
	sweepAfter(t, d)
	env := "PATH=" + shimDir + ":" + os.Getenv("PATH")
	d.start(env)
	c := &ctl{t: t, ctr: containerd2(t, "ctr"), address: d.Address, v2: true, log: d.log}
	c.importImage(buildBusyboxArchive(t, t.TempDir(), busyboxImage))

	ids := []string{"g1", "g2", "g3"}
	for _, id := range ids {
		c.must("run", "-d", "--annotation", "io.kubernetes.cri.sandbox-id=pod", busyboxImage, id, "sleep", "1000")
		c.awaitStatus(id, "RUNNING")
	}
	pids := testutil.ShimPids(d.Address)
	if len(pids) != 1 {
		t.Fatalf("%d shims for one group, want 1", len(pids))
	}
	shimPid := pids[0]

	d.signal(syscall.SIGKILL)
	d.wait(10 * time.Second)
	d = restartWith(d, env)
	c.address = d.Address
	tasks := c.tasks()
	for _, id := range ids {
		if tasks[id].status != "RUNNING" {
			t.Fatalf("after the restart, task %s is %+v", id, tasks[id])
		}
		if out, code := c.run("tasks", "exec", "--exec-id", "x", id, "echo", id); code != 0 || out != id+"\n" {
			t.Fatalf("exec in %s after the restart: exit status %d, output %q\n%s", id, code, out, d.log)
		}
	}

	c.must("tasks", "kill", "--signal", "SIGKILL", "g1")
	c.awaitStatus("g1", "STOPPED")
	c.must("tasks", "delete", "g1")
	c.must("containers", "rm", "g1")
	time.Sleep(200 * time.Millisecond)
	if st := procState(shimPid); st == "" || st == "Z" {
		t.Fatalf("the group's shim exited with its first task (state %q)", st)
	}
	if out, code := c.run("tasks", "exec", "--exec-id", "y", "g2", "true"); code != 0 {
		t.Fatalf("exec in g2 after g1's deletion: exit status %d\n%s", code, out)
	}

	if err := syscall.Kill(shimPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Done once the shim's delete commands, which go by the daemon's
	// address as well, are through, and the tasks unlisted.
	deadline := time.Now().Add(20 * time.Second)
	for len(c.tasks()) > 0 || len(testutil.ShimPids(d.Address)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after the shim was killed, tasks %v and shims %v left\n%s", c.tasks(), testutil.ShimPids(d.Address), d.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, id := range []string{"g2", "g3"} {
		if st := procState(tasks[id].pid); st != "" && st != "Z" {
			t.Errorf("task %s's process %d still runs (%s) after its shim was killed", id, tasks[id].pid, st)
		}
		c.must("containers", "rm", id)
	}
	if mounts := testutil.MountsUnder(d.State); len(mounts) > 0 {
		t.Errorf("mounts left under %s: %v", d.State, mounts)
	}
}
