package v2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/anypb"

	eventsapi "github.com/llitfkitfk/containerd/api/events"
	taskapi "github.com/llitfkitfk/containerd/api/runtime/task/v2"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/runtime"
)

// longRunning exits 143 on SIGTERM at once: the shell is the container's
// pid 1, which gets no signal it does not handle, and the wait builtin,
// unlike a foreground command, is interrupted by a trapped signal.
var longRunning = []string{"sh", "-c", `trap "exit 143" TERM; sleep 1000 & wait`}

// startLongRunning creates and starts a longRunning task and waits until
// the shell has forked sleep, and so set its trap, before the test can
// signal it.
func startLongRunning(t *testing.T, e *env, m *TaskManager, id string) runtime.Task {
	t.Helper()
	ctx := testContext()
	task, err := m.Create(ctx, id, e.createOpts(id, "", longRunning...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the shell to fork sleep", func() bool {
		pids, err := task.Pids(ctx)
		return err == nil && len(pids) >= 2
	})
	return task
}

func TestTaskExitStatus(t *testing.T) {
	e := newEnv(t)
	m := e.manager()
	ctx := testContext()
	exits := subscribe(t, e.events, `topic=="/tasks/exit"`)

	out := filepath.Join(e.dir, "stdout")
	task, err := m.Create(ctx, "exit3", e.createOpts("exit3", out, "sh", "-c", "echo hello; exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	b := bundlePaths(e.root, e.state, testNamespace, "exit3")
	for _, f := range []string{configFile, addressFile, logFifo, shimBinaryFile, "rootfs", "work"} {
		if _, err := os.Lstat(b.file(f)); err != nil {
			t.Errorf("bundle lacks %s: %v", f, err)
		}
	}
	if target, err := os.Readlink(b.file("work")); err != nil || target != b.work {
		t.Errorf("work link = %q, %v; want %q", target, err, b.work)
	}
	st, err := task.State(ctx)
	if err != nil || st.Status != runtime.CreatedStatus || st.Pid == 0 {
		t.Fatalf("state after create = %+v, %v", st, err)
	}
	// The pid comes from the shim's answers to create and start, not
	// from asking again; it must be the one the shim reports.
	if pid, err := task.PID(ctx); err != nil || pid != st.Pid {
		t.Errorf("pid = %d, %v; want %d", pid, err, st.Pid)
	}
	if pid, err := task.Start(ctx); err != nil || pid != st.Pid {
		t.Fatalf("start = %d, %v; want pid %d", pid, err, st.Pid)
	}
	exit, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if exit.Status != 3 || exit.Pid != st.Pid || exit.Timestamp.IsZero() {
		t.Errorf("exit = %+v, want status 3 with pid %d and time", exit, st.Pid)
	}
	waitFile(t, out, "hello\n")
	if st, err := task.State(ctx); err != nil || st.Status != runtime.StoppedStatus || st.ExitStatus != 3 {
		t.Errorf("state after exit = %+v, %v", st, err)
	}

	// The shim reports the exit itself, over the ttrpc events service.
	ev := waitEvent(t, exits, func(ev *events.Envelope) bool { return true })
	if te := decode[*eventsapi.TaskExit](t, ev); te.GetContainerId() != "exit3" || te.GetExitStatus() != 3 {
		t.Errorf("exit event = %v", te)
	}

	deleted, err := m.Delete(ctx, "exit3")
	if err != nil {
		t.Fatal(err)
	}
	if deleted.Status != 3 || deleted.Pid != exit.Pid {
		t.Errorf("delete = %+v, want status 3 pid %d", deleted, exit.Pid)
	}
	for _, p := range []string{b.path, b.work} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
	if _, err := m.Get(ctx, "exit3"); !errdefs.IsNotFound(err) {
		t.Errorf("get after delete: %v, want not found", err)
	}
	if _, err := m.Delete(ctx, "exit3"); !errdefs.IsNotFound(err) {
		t.Errorf("second delete: %v, want not found", err)
	}
	// The shim exits and the trees are removed after Delete returns;
	// Close waits for both.
	shimPid := task.(*shimTask).shimPid
	m.Close()
	if !processGone(shimPid) {
		t.Errorf("shim %d still running after close", shimPid)
	}
	for _, dir := range []string{filepath.Dir(b.path), filepath.Dir(b.work)} {
		if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
			t.Errorf("%s holds %v after close (%v)", dir, entries, err)
		}
	}
}

// processGone reports whether pid has exited or is exiting: a shim
// closes its connection as it exits, a moment before it is a zombie.
func processGone(pid uint32) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state and, six fields on, the flags follow the parenthesised
	// command name.
	i := strings.LastIndexByte(string(data), ')')
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 7 {
		return false
	}
	const pfExiting = 0x4
	flags, _ := strconv.ParseUint(fields[6], 10, 64)
	return fields[0] == "Z" || fields[0] == "X" || flags&pfExiting != 0
}

// TestRecreateAfterDelete creates a task of the id just deleted, at once:
// the old shim may still be exiting, and the new create must wait for it,
// neither refused nor sent to the old shim.
func TestRecreateAfterDelete(t *testing.T) {
	e := newEnv(t)
	m := e.manager()
	ctx := testContext()
	run := func() uint32 {
		t.Helper()
		task, err := m.Create(ctx, "again", e.createOpts("again", "", "sh", "-c", "exit 0"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := task.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if exit, err := task.Wait(ctx); err != nil || exit.Status != 0 {
			t.Fatalf("exit = %+v, %v", exit, err)
		}
		if _, err := m.Delete(ctx, "again"); err != nil {
			t.Fatal(err)
		}
		return task.(*shimTask).shimPid
	}
	first := run()
	second := run()
	if first == second {
		t.Errorf("both tasks ran under shim %d", first)
	}
	m.Close()
	for _, pid := range []uint32{first, second} {
		if !processGone(pid) {
			t.Errorf("shim %d still running after close", pid)
		}
	}
}

// TestRestartRetiredBundle is a daemon killed after a task's deletion
// returned but before its shim was let go: the next start finds the shim
// through the retired bundle, stops it, and reports nothing.
func TestRestartRetiredBundle(t *testing.T) {
	e := newEnv(t)
	m1 := e.manager()
	ctx := testContext()

	task, err := m1.Create(ctx, "retired", e.createOpts("retired", "", "sh", "-c", "exit 0"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// What Delete does before it returns. The shim publishes the task's
	// deletion itself, asynchronously: it must be in before the restart,
	// or it would pass for one the restart published.
	s := task.(*shimTask)
	shimDeletes := subscribe(t, e.events, `topic=="/tasks/delete"`)
	if _, err := s.task.Delete(ctx, &taskapi.DeleteRequest{Id: "retired"}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, shimDeletes, func(*events.Envelope) bool { return true })
	if _, err := s.bundle.retire(); err != nil {
		t.Fatal(err)
	}
	m1.Close() // the daemon dies; the shim does not
	if processGone(s.shimPid) {
		t.Fatal("shim exited with the daemon")
	}

	all := subscribe(t, e.events)
	m2 := e.manager()
	defer m2.Close()
	if !processGone(s.shimPid) {
		t.Errorf("shim %d of the deleted task still running after restart", s.shimPid)
	}
	for _, dir := range []string{filepath.Join(e.state, testNamespace), filepath.Join(e.root, testNamespace)} {
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%s still holds %v", dir, entries)
		}
	}
	select {
	case ev := <-all:
		t.Errorf("event %s %v for a task deleted before the restart", ev.Topic, ev.Event)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestTaskLifecycle(t *testing.T) {
	e := newEnv(t)
	m := e.manager()
	ctx := testContext()

	task := startLongRunning(t, e, m, "long")
	if _, err := m.Create(ctx, "long", e.createOpts("long", "", longRunning...)); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second create: %v, want already exists", err)
	}
	if tasks, err := m.Tasks(ctx, false); err != nil || len(tasks) != 1 || tasks[0].ID() != "long" {
		t.Errorf("tasks = %v, %v", tasks, err)
	}
	if tasks, err := m.Tasks(namespaces.WithNamespace(context.Background(), "other"), false); err != nil || len(tasks) != 0 {
		t.Errorf("tasks of another namespace = %v, %v", tasks, err)
	}
	pid, err := task.PID(ctx)
	if err != nil || pid == 0 {
		t.Fatalf("pid = %d, %v", pid, err)
	}
	if pids, err := task.Pids(ctx); err != nil || len(pids) != 2 {
		t.Errorf("pids = %v, %v; want the shell and sleep", pids, err)
	}

	if err := task.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := task.State(ctx); err != nil || st.Status != runtime.PausedStatus {
		t.Errorf("state after pause = %v, %v", st.Status, err)
	}
	if err := task.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := task.State(ctx); err != nil || st.Status != runtime.RunningStatus || st.Pid != pid {
		t.Errorf("state after resume = %+v, %v", st, err)
	}

	execOut := filepath.Join(e.dir, "exec-out")
	spec, err := json.Marshal(processSpec([]string{"echo", "exec"}))
	if err != nil {
		t.Fatal(err)
	}
	proc, err := task.Exec(ctx, "exec1", runtime.ExecOpts{
		Spec: &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", Value: spec},
		IO:   fileIO(execOut),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := task.Exec(ctx, "bad/id", runtime.ExecOpts{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("exec with bad id: %v, want invalid argument", err)
	}
	execPid, err := proc.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if execPid == 0 || execPid == pid {
		t.Errorf("exec pid = %d, want its own (init is %d)", execPid, pid)
	}
	if exit, err := proc.Wait(ctx); err != nil || exit.Status != 0 {
		t.Fatalf("exec exit = %+v, %v", exit, err)
	}
	waitFile(t, execOut, "exec\n")
	if p, err := task.Process(ctx, "exec1"); err != nil || p.ID() != "exec1" {
		t.Errorf("process exec1 = %v, %v", p, err)
	}
	if _, err := proc.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := task.Process(ctx, "exec1"); !errdefs.IsNotFound(err) {
		t.Errorf("process after delete: %v, want not found", err)
	}

	if _, err := m.Delete(ctx, "long"); err == nil {
		t.Fatal("deleted a running task")
	}
	if err := task.Kill(ctx, uint32(syscall.SIGTERM), false); err != nil {
		t.Fatal(err)
	}
	exit, err := task.Wait(ctx)
	if err != nil || exit.Status != 143 {
		t.Fatalf("exit = %+v, %v; want status 143", exit, err)
	}
	b := bundlePaths(e.root, e.state, testNamespace, "long")
	if _, err := m.Delete(ctx, "long"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bundle left behind: %v", err)
	}
}

func TestCreateErrors(t *testing.T) {
	e := newEnv(t)
	m := e.manager()
	ctx := testContext()

	opts := e.createOpts("x", "", "true")
	for _, tc := range []struct {
		name string
		ctx  context.Context
		id   string
		opts func(runtime.CreateOpts) runtime.CreateOpts
		is   func(error) bool
	}{
		{"no namespace", context.Background(), "x", nil, errdefs.IsFailedPrecondition},
		{"bad id", ctx, "../x", nil, errdefs.IsInvalidArgument},
		{"no spec", ctx, "x", func(o runtime.CreateOpts) runtime.CreateOpts { o.Spec = nil; return o }, errdefs.IsInvalidArgument},
		{"bad runtime", ctx, "x", func(o runtime.CreateOpts) runtime.CreateOpts { o.Runtime = "runc"; return o }, errdefs.IsInvalidArgument},
		{"missing shim", ctx, "x", func(o runtime.CreateOpts) runtime.CreateOpts { o.Runtime = "io.containerd.nope.v9"; return o }, errdefs.IsNotFound},
		{"missing path", ctx, "x", func(o runtime.CreateOpts) runtime.CreateOpts { o.Runtime = "/nonexistent/shim"; return o }, errdefs.IsNotFound},
	} {
		o := opts
		if tc.opts != nil {
			o = tc.opts(o)
		}
		if _, err := m.Create(tc.ctx, tc.id, o); !tc.is(err) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}

	// A spec runc rejects fails in the shim: nothing is left.
	bad := opts
	bad.Spec = &anypb.Any{Value: []byte(`{"ociVersion":"1.0.2","process":{"args":["true"],"cwd":"/"},"root":{"path":"nope"}}`)}
	if _, err := m.Create(ctx, "bad", bad); err == nil {
		t.Fatal("created a task runc cannot run")
	}
	b := bundlePaths(e.root, e.state, testNamespace, "bad")
	for _, p := range []string{b.path, b.work} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
	// The id is free again.
	task, err := m.Create(ctx, "bad", opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Delete(ctx, task.ID()); err != nil {
		t.Fatal(err)
	}
}

func TestShimCrash(t *testing.T) {
	e := newEnv(t)
	m := e.manager()
	ctx := testContext()

	task := startLongRunning(t, e, m, "crash")
	pid, err := task.PID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exits := subscribe(t, e.events, `topic=="/tasks/exit"`)
	deletes := subscribe(t, e.events, `topic=="/tasks/delete"`)
	killShim(t, task)

	ev := decode[*eventsapi.TaskExit](t, waitEvent(t, exits, func(*events.Envelope) bool { return true }))
	if ev.GetContainerId() != "crash" || ev.GetId() != "crash" || ev.GetPid() != pid || ev.GetExitStatus() != 128+uint32(syscall.SIGKILL) {
		t.Errorf("exit event = %v, want crash pid %d status 137", ev, pid)
	}
	del := decode[*eventsapi.TaskDelete](t, waitEvent(t, deletes, func(*events.Envelope) bool { return true }))
	if del.GetContainerId() != "crash" || del.GetPid() != pid {
		t.Errorf("delete event = %v", del)
	}
	b := bundlePaths(e.root, e.state, testNamespace, "crash")
	waitFor(t, "the bundle to go", func() bool {
		_, err := os.Stat(b.path)
		return errors.Is(err, os.ErrNotExist)
	})
	if _, err := m.Get(ctx, "crash"); !errdefs.IsNotFound(err) {
		t.Errorf("get after crash: %v, want not found", err)
	}
	// The shim's delete command took the container with it.
	waitFor(t, "the container to be killed", func() bool {
		return syscall.Kill(int(pid), 0) != nil
	})
	if err := task.Kill(ctx, uint32(syscall.SIGKILL), false); !errdefs.IsNotFound(err) {
		t.Errorf("kill after crash: %v, want not found", err)
	}
}

// A task whose shim died is being cleaned up (the shim's delete command
// runs) as soon as calls to it fail. A create of the same id meanwhile
// waits for that cleanup rather than failing with "already exists" for a
// task that no list shows.
func TestCreateWhileDeadShimIsCleanedUp(t *testing.T) {
	e := newEnv(t)
	m := e.manager()
	ctx := testContext()

	task := startLongRunning(t, e, m, "again")
	deletes := subscribe(t, e.events, `topic=="/tasks/delete"`)
	killShim(t, task)
	waitFor(t, "calls to the dead shim to fail", func() bool {
		_, err := task.State(ctx)
		return err != nil
	})
	again, err := m.Create(ctx, "again", e.createOpts("again", "", "true"))
	if err != nil {
		t.Fatalf("create of a dead shim's task id during its cleanup: %v", err)
	}
	// The old task's deletion was reported before the new task existed.
	waitEvent(t, deletes, func(*events.Envelope) bool { return true })
	if _, err := again.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if exit, err := again.Wait(ctx); err != nil || exit.Status != 0 {
		t.Fatalf("exit = %+v, %v", exit, err)
	}
	if _, err := m.Delete(ctx, "again"); err != nil {
		t.Fatal(err)
	}
}

func TestRestart(t *testing.T) {
	e := newEnv(t)
	m1 := e.manager()
	ctx := testContext()

	task := startLongRunning(t, e, m1, "survivor")
	pid, _ := task.PID(ctx)
	m1.Close() // the daemon dies; the shim does not

	m2 := e.manager()
	tasks, err := m2.Tasks(ctx, false)
	if err != nil || len(tasks) != 1 || tasks[0].ID() != "survivor" {
		t.Fatalf("tasks after restart = %v, %v", tasks, err)
	}
	task = tasks[0]
	if st, err := task.State(ctx); err != nil || st.Status != runtime.RunningStatus || st.Pid != pid {
		t.Fatalf("state after restart = %+v, %v", st, err)
	}
	if err := task.Kill(ctx, uint32(syscall.SIGTERM), false); err != nil {
		t.Fatal(err)
	}
	if exit, err := task.Wait(ctx); err != nil || exit.Status != 143 {
		t.Fatalf("exit = %+v, %v", exit, err)
	}
	if _, err := m2.Delete(ctx, "survivor"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.state, testNamespace, "survivor")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bundle left behind: %v", err)
	}
}

func TestRestartDeadShim(t *testing.T) {
	e := newEnv(t)
	m1 := e.manager()
	ctx := testContext()

	task := startLongRunning(t, e, m1, "dead")
	pid, _ := task.PID(ctx)
	m1.Close()
	killShim(t, task)

	exits := subscribe(t, e.events, `topic=="/tasks/exit"`)
	m2 := e.manager()
	ev := decode[*eventsapi.TaskExit](t, waitEvent(t, exits, func(*events.Envelope) bool { return true }))
	if ev.GetContainerId() != "dead" || ev.GetPid() != pid {
		t.Errorf("exit event = %v, want dead pid %d", ev, pid)
	}
	if tasks, _ := m2.Tasks(ctx, true); len(tasks) != 0 {
		t.Errorf("tasks = %v, want none", tasks)
	}
	for _, p := range []string{filepath.Join(e.state, testNamespace, "dead"), filepath.Join(e.root, testNamespace, "dead")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
}

// TestRestartHalfCreated covers a daemon killed at each point of Create.
func TestRestartHalfCreated(t *testing.T) {
	e := newEnv(t)
	shim, err := lookupShim("io.containerd.runc.v2")
	if err != nil {
		t.Fatal(err)
	}
	nsState := filepath.Join(e.state, testNamespace)
	write := func(id, name, data string) {
		if err := os.MkdirAll(filepath.Join(nsState, id), 0o700); err != nil {
			t.Fatal(err)
		}
		if name != "" {
			if err := os.WriteFile(filepath.Join(nsState, id, name), []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("empty", "", "")
	write("nospec", configFile, "{}")
	write("noshim", configFile, "{}")
	os.Mkdir(filepath.Join(nsState, "noshim", "rootfs"), 0o711)
	write("noaddress", shimBinaryFile, shim)
	write("deadaddress", shimBinaryFile, shim)
	write("deadaddress", addressFile, "unix://"+filepath.Join(e.dir, "no.sock"))
	write(".hidden", configFile, "{}")
	for _, id := range []string{"noshim", "stale"} {
		if err := os.MkdirAll(filepath.Join(e.root, testNamespace, id), 0o711); err != nil {
			t.Fatal(err)
		}
	}

	all := subscribe(t, e.events)
	m := e.manager()
	if tasks, _ := m.Tasks(testContext(), true); len(tasks) != 0 {
		t.Errorf("tasks = %v, want none", tasks)
	}
	for _, dir := range []string{nsState, filepath.Join(e.root, testNamespace)} {
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%s still holds %v", dir, entries)
		}
	}
	// Only the task whose shim had started and then died is reported.
	ev := waitEvent(t, all, func(*events.Envelope) bool { return true })
	if ev.Topic != runtime.TaskExitEventTopic || decode[*eventsapi.TaskExit](t, ev).GetContainerId() != "deadaddress" {
		t.Errorf("first event %s %v, want the exit of deadaddress", ev.Topic, ev.Event)
	}
	ev = waitEvent(t, all, func(*events.Envelope) bool { return true })
	if ev.Topic != runtime.TaskDeleteEventTopic {
		t.Errorf("second event on %s, want %s", ev.Topic, runtime.TaskDeleteEventTopic)
	}
	select {
	case ev := <-all:
		t.Errorf("unexpected event %s %v", ev.Topic, ev.Event)
	case <-time.After(200 * time.Millisecond):
	}
}

func killShim(t *testing.T, task runtime.Task) {
	t.Helper()
	s := task.(*shimTask)
	if s.shimPid == 0 {
		t.Fatal("no shim pid")
	}
	if err := syscall.Kill(int(s.shimPid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

func subscribe(t *testing.T, ex events.Subscriber, filters ...string) <-chan *events.Envelope {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, _ := ex.Subscribe(ctx, filters...)
	return ch
}

func waitEvent(t *testing.T, ch <-chan *events.Envelope, match func(*events.Envelope) bool) *events.Envelope {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-ch:
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatal("timed out waiting for an event")
		}
	}
}

func decode[T any](t *testing.T, ev *events.Envelope) T {
	t.Helper()
	m, err := events.UnmarshalEvent(ev.Event)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := m.(T)
	if !ok {
		t.Fatalf("event on %s is %T", ev.Topic, m)
	}
	return v
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitFile(t *testing.T, path, want string) {
	t.Helper()
	var got string
	waitFor(t, path+" to hold "+strings.TrimSpace(want), func() bool {
		data, _ := os.ReadFile(path)
		got = string(data)
		return got == want
	})
}

// TestShimCrashAfterExit checks that a task whose exit the shim already
// reported does not exit twice when its shim dies.
func TestShimCrashAfterExit(t *testing.T) {
	e := newEnv(t)
	m := e.manager()
	ctx := testContext()

	task, err := m.Create(ctx, "exited", e.createOpts("exited", "", "sh", "-c", "exit 5"))
	if err != nil {
		t.Fatal(err)
	}
	shimExits := subscribe(t, e.events, `topic=="/tasks/exit"`)
	if _, err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, shimExits, func(*events.Envelope) bool { return true })
	waitFor(t, "the exit to be noted", func() bool { return task.(*shimTask).exited.Load() })

	exits := subscribe(t, e.events, `topic=="/tasks/exit"`)
	deletes := subscribe(t, e.events, `topic=="/tasks/delete"`)
	killShim(t, task)
	del := decode[*eventsapi.TaskDelete](t, waitEvent(t, deletes, func(*events.Envelope) bool { return true }))
	if del.GetContainerId() != "exited" {
		t.Errorf("delete event = %v", del)
	}
	select {
	case ev := <-exits:
		t.Errorf("second exit: %v", ev.Event)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestSubreaperReapsShim runs as the daemon does, a child subreaper, which
// makes every shim its child once the shim's start command exits.
func TestSubreaperReapsShim(t *testing.T) {
	e := newEnv(t)
	m := e.manager()
	ctx := testContext()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)

	task := startLongRunning(t, e, m, "reaped")
	s := task.(*shimTask)
	if !s.child {
		t.Fatalf("shim %d is not our child", s.shimPid)
	}
	if err := task.Kill(ctx, uint32(syscall.SIGTERM), false); err != nil {
		t.Fatal(err)
	}
	if _, err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Delete(ctx, "reaped"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the shim to be reaped", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", s.shimPid))
		return errors.Is(err, os.ErrNotExist)
	})
}
