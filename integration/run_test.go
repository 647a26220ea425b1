//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// runNamespace is where the tests run containers. Their cgroups are
// /<namespace>/<id>, which is how a failed run's leftovers are found. The
// cgroup hierarchy is the host's, so the name is the run's own (see
// enterPrivateRun): concurrent runs must not share cgroups, nor sweep
// each other's.
var runNamespace = "integration-run"

// busyboxImage is the name the test image is imported as.
const busyboxImage = "docker.io/library/ctrd-busybox:test"

// runner drives ctr in runNamespace, against a daemon that may be
// replaced by a restart, with one snapshotter.
type runner struct {
	t  *testing.T
	d  *daemon
	sn string
}

// snapshotters are those the tests run containers on. overlayfs is ctr's
// default and so is not named on its command lines.
var snapshotters = []string{"naive", "overlayfs"}

// newRunner starts a daemon and imports the busybox image, unpacked for
// sn. Whatever tasks and containers a test leaves are removed before the
// daemon stops.
func newRunner(t *testing.T, sn string) *runner {
	t.Helper()
	if !privateRun {
		t.Skip("running containers needs root, for a private /run")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatal("runc not installed (`make test` installs it)")
	}
	archive := buildBusyboxArchive(t, t.TempDir(), busyboxImage)
	d := newDaemon(t, "")
	d.start()
	r := &runner{t: t, d: d, sn: sn}
	t.Cleanup(r.removeAll)
	r.ctr(r.withSnapshotter("images", "import")(archive)...)
	// What an import prints differs between ctrs (1.6 unpacks in the
	// client, ours through the daemon's transfer service): ask the image.
	check := r.ctr("images", "check", "--snapshotter", sn)
	if f := strings.Fields(imageLine(check, busyboxImage)); len(f) == 0 || f[len(f)-1] != "true" {
		t.Fatalf("import did not unpack %s into %s:\n%s", busyboxImage, sn, check)
	}
	return r
}

// withSnapshotter returns a function appending its arguments to args and
// the snapshotter flag, where ctr's default is not the one.
func (r *runner) withSnapshotter(args ...string) func(...string) []string {
	if r.sn != "overlayfs" {
		args = append(args, "--snapshotter", r.sn)
	}
	return func(rest ...string) []string { return append(append([]string(nil), args...), rest...) }
}

func (r *runner) ctr(args ...string) string {
	r.t.Helper()
	return r.d.ctr(append([]string{"-n", runNamespace}, args...)...)
}

// ctrCode runs ctr and returns its output and exit status.
func (r *runner) ctrCode(args ...string) (string, int) {
	out, err := r.d.ctrErr(append([]string{"-n", runNamespace}, args...)...)
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return out, exit.ExitCode()
	case err != nil:
		r.t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out, 0
}

// removeAll force-deletes every task and container in the namespace, so
// that no container outlives its test. Should the daemon be gone, what it
// left is for the sweep at the end of the run.
func (r *runner) removeAll() {
	select {
	case <-r.d.Exited:
		return
	default:
	}
	list := func(what string) []string {
		out, err := r.d.ctrErr("-n", runNamespace, what, "ls", "-q")
		if err != nil {
			r.t.Logf("cleanup: %s ls: %v\n%s", what, err, out)
			return nil
		}
		return strings.Fields(out)
	}
	for _, id := range list("tasks") {
		if out, err := r.d.ctrErr("-n", runNamespace, "tasks", "delete", "-f", id); err != nil {
			r.t.Logf("cleanup: tasks delete -f %s: %v\n%s", id, err, out)
		}
	}
	for _, id := range list("containers") {
		if out, err := r.d.ctrErr("-n", runNamespace, "containers", "rm", id); err != nil {
			r.t.Logf("cleanup: containers rm %s: %v\n%s", id, err, out)
		}
	}
}

// task is a line of `ctr tasks ls`.
type task struct {
	pid    int
	status string
}

func (r *runner) tasks() map[string]task {
	r.t.Helper()
	out := r.ctr("tasks", "ls")
	tasks := map[string]task{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) != 3 {
			r.t.Fatalf("odd tasks ls line %q", line)
		}
		pid, _ := strconv.Atoi(f[1])
		tasks[f[0]] = task{pid: pid, status: f[2]}
	}
	return tasks
}

// awaitStatus waits until `tasks ls` shows task id in status.
func (r *runner) awaitStatus(id, status string) task {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		tk, ok := r.tasks()[id]
		if ok && tk.status == status {
			return tk
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("task %s is %+v (listed: %v), not %s\n%s", id, tk, ok, status, r.d.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// procState returns the state letter of pid, or "" once it is gone.
func procState(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(data)
	if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 0 {
		return f[0]
	}
	return ""
}

func TestCtrRun(t *testing.T) {
	for _, sn := range snapshotters {
		t.Run(sn, func(t *testing.T) {
			r := newRunner(t, sn)
			run := r.withSnapshotter("run", "--rm")

			// ctr run exits with the task's status.
			out, code := r.ctrCode(run(busyboxImage, "run1", "sh", "-c", "echo hi; exit 3")...)
			if code != 3 || strings.TrimSpace(out) != "hi" {
				t.Fatalf("ctr run: exit status %d, output %q; want 3, \"hi\"\n%s", code, out, r.d.log)
			}

			// The container has its image's root filesystem and
			// environment.
			out, code = r.ctrCode(run(busyboxImage, "run2", "sh", "-c", `id -u; echo "$PATH"; ls /bin/busybox; cat /etc/passwd`)...)
			want := "0\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/bin/busybox\nroot:x:0:0:root:/root:/bin/sh\n"
			if code != 0 || out != want {
				t.Fatalf("ctr run: exit status %d, output %q, want %q\ndaemon log:\n%s", code, out, want, r.d.log)
			}

			// --rm leaves nothing behind.
			if out := r.ctr("tasks", "ls", "-q"); strings.TrimSpace(out) != "" {
				t.Errorf("tasks left after run --rm:\n%s", out)
			}
			if out := r.ctr("containers", "ls", "-q"); strings.TrimSpace(out) != "" {
				t.Errorf("containers left after run --rm:\n%s", out)
			}
			for _, key := range snapshotKeys(r) {
				if key == "run1" || key == "run2" {
					t.Errorf("snapshot %s left after run --rm", key)
				}
			}
		})
	}
}

// snapshotKeys lists the snapshots of the runner's snapshotter.
func snapshotKeys(r *runner) []string {
	r.t.Helper()
	out := r.ctr(append([]string{"snapshots", "--snapshotter", r.sn}, "ls")...)
	var keys []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 0 {
			keys = append(keys, f[0])
		}
	}
	return keys
}

func hasKey(keys []string, key string) bool {
	for _, k := range keys {
		if k == key {
			return true
		}
	}
	return false
}

func TestCtrContainers(t *testing.T) {
	for _, sn := range snapshotters {
		t.Run(sn, func(t *testing.T) {
			r := newRunner(t, sn)
			r.ctr(r.withSnapshotter("containers", "create")(busyboxImage, "c1", "sleep", "1")...)

			ls := r.ctr("containers", "ls")
			var line string
			for _, l := range strings.Split(ls, "\n") {
				if f := strings.Fields(l); len(f) > 0 && f[0] == "c1" {
					line = l
				}
			}
			if f := strings.Fields(line); len(f) != 3 || f[1] != busyboxImage || f[2] != "io.containerd.runc.v2" {
				t.Fatalf("containers ls:\n%s", ls)
			}

			var info struct {
				ID          string
				Labels      map[string]string
				Image       string
				Runtime     struct{ Name string }
				Snapshotter string
				SnapshotKey string
				Spec        struct {
					Process struct{ Args []string }
				}
			}
			if err := json.Unmarshal([]byte(r.ctr("containers", "info", "c1")), &info); err != nil {
				t.Fatal(err)
			}
			if info.ID != "c1" || info.Image != busyboxImage || info.Runtime.Name != "io.containerd.runc.v2" ||
				info.Snapshotter != sn || info.SnapshotKey != "c1" ||
				strings.Join(info.Spec.Process.Args, " ") != "sleep 1" {
				t.Fatalf("containers info: %+v", info)
			}

			r.ctr("containers", "label", "c1", "a=b")
			if err := json.Unmarshal([]byte(r.ctr("containers", "info", "c1")), &info); err != nil {
				t.Fatal(err)
			}
			if info.Labels["a"] != "b" {
				t.Fatalf("labels after containers label: %v", info.Labels)
			}

			// The container alone keeps its snapshot from collection.
			settle(r.d)
			if keys := snapshotKeys(r); !hasKey(keys, "c1") {
				t.Fatalf("snapshot of c1 collected while c1 exists: %v", keys)
			}

			if out, err := r.d.ctrErr("-n", runNamespace, "containers", "create", busyboxImage, "c1"); err == nil {
				t.Fatalf("second containers create c1 succeeded:\n%s", out)
			} else if !strings.Contains(out, "already exists") {
				t.Errorf("second containers create c1: %s", out)
			}

			r.ctr("containers", "rm", "c1")
			if out := r.ctr("containers", "ls", "-q"); strings.TrimSpace(out) != "" {
				t.Fatalf("containers ls after rm:\n%s", out)
			}
			if keys := snapshotKeys(r); hasKey(keys, "c1") {
				t.Errorf("snapshot of c1 left after containers rm: %v", keys)
			}
			if out, err := r.d.ctrErr("-n", runNamespace, "containers", "info", "c1"); err == nil || !strings.Contains(out, "not found") {
				t.Errorf("containers info after rm: %v\n%s", err, out)
			}
		})
	}
}

func TestCtrTasks(t *testing.T) {
	for _, sn := range snapshotters {
		t.Run(sn, func(t *testing.T) {
			r := newRunner(t, sn)
			// sh as pid 1 gets SIGTERM only with a handler for it.
			// "--" keeps ctr from taking -c for its own flag.
			r.ctr(r.withSnapshotter("containers", "create")(busyboxImage, "c2", "--", "sh", "-c", `trap "exit 0" TERM; sleep 1000 & wait`)...)
			events := r.watchEvents()

			r.ctr("tasks", "start", "-d", "c2")
			tk := r.awaitStatus("c2", "RUNNING")
			if tk.pid <= 0 || procState(tk.pid) == "" {
				t.Fatalf("task c2 pid %d is not running here", tk.pid)
			}

			// The init shell and its sleep.
			ps := r.ctr("tasks", "ps", "c2")
			pids := strings.Split(strings.TrimSpace(ps), "\n")[1:]
			if len(pids) != 2 || !strings.Contains(ps, strconv.Itoa(tk.pid)) {
				t.Fatalf("tasks ps c2:\n%s", ps)
			}

			if out := r.ctr("tasks", "exec", "--exec-id", "e1", "c2", "echo", "x"); out != "x\n" {
				t.Fatalf("tasks exec output %q", out)
			}
			if out, code := r.ctrCode("tasks", "exec", "--exec-id", "e2", "c2", "sh", "-c", "exit 5"); code != 5 {
				t.Fatalf("tasks exec exit status %d, want 5\n%s\ntasks: %v\ndaemon log:\n%s", code, out, r.tasks(), r.d.log)
			}

			r.ctr("tasks", "pause", "c2")
			r.awaitStatus("c2", "PAUSED")
			r.ctr("tasks", "resume", "c2")
			r.awaitStatus("c2", "RUNNING")

			if out := r.ctr("tasks", "metrics", "c2"); !strings.Contains(out, "c2") || !strings.Contains(out, "memory") {
				t.Errorf("tasks metrics c2:\n%s", out)
			}

			// A running task cannot be deleted.
			if out, err := r.d.ctrErr("-n", runNamespace, "tasks", "delete", "c2"); err == nil {
				t.Fatalf("deleted a running task:\n%s", out)
			}

			r.ctr("tasks", "kill", "c2")
			r.awaitStatus("c2", "STOPPED")
			r.ctr("tasks", "delete", "c2")
			if _, ok := r.tasks()["c2"]; ok {
				t.Fatal("task c2 listed after delete")
			}
			if out, err := r.d.ctrErr("-n", runNamespace, "tasks", "delete", "c2"); err == nil || !strings.Contains(out, "not found") {
				t.Errorf("second tasks delete: %v\n%s", err, out)
			}
			r.ctr("containers", "rm", "c2")

			// The shims' events reach clients, each once: the tasks
			// service publishes none of its own.
			events.await(t, func(line string) bool { return strings.Contains(line, "/tasks/delete") }, r.d)
			for _, want := range []struct{ topic, field string }{
				{"/tasks/create", `"container_id":"c2"`},
				{"/tasks/start", `"container_id":"c2"`},
				{"/tasks/exec-added", `"exec_id":"e1"`},
				{"/tasks/exec-started", `"exec_id":"e1"`},
				{"/tasks/exit", `"id":"e1"`},
				{"/tasks/paused", `"container_id":"c2"`},
				{"/tasks/resumed", `"container_id":"c2"`},
				{"/tasks/exit", `"id":"c2"`},
				{"/tasks/delete", `"container_id":"c2"`},
			} {
				n := events.count(func(line string) bool {
					return strings.Contains(line, " "+want.topic+" ") && strings.Contains(line, want.field)
				})
				if n != 1 {
					t.Errorf("%d %s events with %s, want 1:\n%s", n, want.topic, want.field, events)
				}
			}
		})
	}
}

// A task outlives the daemon: killed with SIGKILL and started again, the
// daemon finds the task's shim and serves it as before.
func TestCtrTaskSurvivesRestart(t *testing.T) {
	for _, sn := range snapshotters {
		t.Run(sn, func(t *testing.T) {
			r := newRunner(t, sn)
			r.ctr(r.withSnapshotter("run", "-d")(busyboxImage, "r1", "sleep", "1000")...)
			tk := r.awaitStatus("r1", "RUNNING")

			d := r.d
			if err := d.Cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			d.wait(10 * time.Second)
			time.Sleep(100 * time.Millisecond)
			if state := procState(tk.pid); state == "" || state == "Z" {
				t.Fatalf("container process %d gone with the daemon (state %q)", tk.pid, state)
			}

			r.d = d.restart()
			// Cleanups run last first: this one before the new daemon stops.
			t.Cleanup(r.removeAll)
			if got := r.awaitStatus("r1", "RUNNING"); got.pid != tk.pid {
				t.Fatalf("after restart task r1 has pid %d, was %d", got.pid, tk.pid)
			}
			if out := r.ctr("tasks", "exec", "--exec-id", "e1", "r1", "echo", "x"); out != "x\n" {
				t.Fatalf("tasks exec after restart: %q", out)
			}
			// sleep as pid 1 ignores SIGTERM.
			r.ctr("tasks", "kill", "-s", "SIGKILL", "r1")
			r.awaitStatus("r1", "STOPPED")
			r.ctr("tasks", "delete", "r1")
			deadline := time.Now().Add(10 * time.Second)
			for procState(tk.pid) != "" {
				if time.Now().After(deadline) {
					t.Fatalf("container process %d still there (state %q)", tk.pid, procState(tk.pid))
				}
				time.Sleep(20 * time.Millisecond)
			}
			r.ctr("containers", "rm", "r1")
		})
	}
}

// eventLog collects what `ctr events` prints.
type eventLog struct {
	mu    sync.Mutex
	lines []string
}

// watchEvents runs `ctr events` until the test ends, and returns once it
// is seen to be subscribed.
func (r *runner) watchEvents() *eventLog {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, ctrBinary, "-a", r.d.Address, "events")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	l := &eventLog{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, s.Text())
			l.mu.Unlock()
		}
	}()
	r.t.Cleanup(func() { cancel(); <-done; cmd.Wait() })

	// ctr does not say when it has subscribed; label a namespace until an
	// update shows.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		r.d.ctr("namespaces", "label", runNamespace, fmt.Sprintf("probe=%d", i))
		time.Sleep(50 * time.Millisecond)
		if l.count(func(line string) bool { return strings.Contains(line, "/namespaces/update") }) > 0 {
			return l
		}
		if time.Now().After(deadline) {
			r.t.Fatal("ctr events shows nothing")
		}
	}
}

func (l *eventLog) count(match func(string) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if match(line) {
			n++
		}
	}
	return n
}

func (l *eventLog) await(t *testing.T, match func(string) bool, d *daemon) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for l.count(match) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("event not seen:\n%s\ndaemon log:\n%s", l, d.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *eventLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// parentOf returns the parent pid of pid, or 0 once it is gone.
func parentOf(pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// When a shim dies (kill -9), the daemon notices and runs the shim's
// delete command, which kills the container and makes runc forget it. The
// container's processes are re-parented to the daemon, a child subreaper,
// which must reap them: none is left a zombie.
func TestCtrShimCrashLeavesNoZombies(t *testing.T) {
	r := newRunner(t, "overlayfs")
	r.ctr("run", "-d", busyboxImage, "s1", "sleep", "1000")
	tk := r.awaitStatus("s1", "RUNNING")
	shim := parentOf(tk.pid)
	if shim <= 1 {
		t.Fatalf("no shim for container process %d", tk.pid)
	}
	events := r.watchEvents()
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	// The daemon reports the task gone, exit and all.
	events.await(t, func(line string) bool {
		return strings.Contains(line, "/tasks/delete") && strings.Contains(line, `"s1"`)
	}, r.d)
	if n := events.count(func(line string) bool { return strings.Contains(line, "/tasks/exit") && strings.Contains(line, `"s1"`) }); n != 1 {
		t.Errorf("%d /tasks/exit events for s1, want 1:\n%s", n, events)
	}
	if _, ok := r.tasks()["s1"]; ok {
		t.Error("task s1 listed after its shim died")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		state := procState(tk.pid)
		if state == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container process %d left in state %s, parent %d (daemon %d)", tk.pid, state, parentOf(tk.pid), r.d.Cmd.Process.Pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// runc's state for the container is gone: a container of the same id
	// runs again.
	r.ctr("containers", "rm", "s1")
	if out := r.ctr("run", "--rm", busyboxImage, "s1", "echo", "again"); out != "again\n" {
		t.Fatalf("run of s1 after cleanup: %q", out)
	}
}
