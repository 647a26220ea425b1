package v2

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/anypb"

	eventsapi "github.com/llitfkitfk/containerd/api/events"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/runtime"
)

// The tests here run fake shims (fakeshim_test.go): they need neither
// root nor runc, and show what the daemon's side does with shims of each
// generation and with one shim serving several tasks.

// fakeEnv is an env without a root filesystem, and the fake shims'
// directory, where their sockets and calls.log are.
type fakeEnv struct {
	*env
	shims string
}

func newFakeEnv(t *testing.T) *fakeEnv {
	t.Helper()
	e := newBareEnv(t)
	fe := &fakeEnv{env: e, shims: filepath.Join(e.dir, "shims")}
	if err := os.Mkdir(fe.shims, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{fakeLegacy, fakeJSON, fakeBoot} {
		if err := os.Symlink(self, filepath.Join(fe.shims, name)); err != nil {
			t.Fatal(err)
		}
	}
	return fe
}

// opts creates task id under the fake shim name, in group if not "".
func (fe *fakeEnv) opts(name, id, group string) runtime.CreateOpts {
	spec := map[string]any{"ociVersion": "1.0.2", "process": map[string]any{"args": []string{"true"}}}
	if group != "" {
		spec["annotations"] = map[string]string{groupLabel: group}
	}
	data, err := json.Marshal(spec)
	if err != nil {
		fe.t.Fatal(err)
	}
	return runtime.CreateOpts{
		Spec:           &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec", Value: data},
		Runtime:        filepath.Join(fe.shims, name),
		RuntimeOptions: &anypb.Any{TypeUrl: fakeOptionsURL, Value: []byte("x")},
	}
}

// calls returns the lines the fake shims logged.
func (fe *fakeEnv) calls() []string {
	data, err := os.ReadFile(filepath.Join(fe.shims, "calls.log"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		fe.t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(data)), " ", "_"))
}

func (fe *fakeEnv) create(m *TaskManager, name, id, group string) *shimTask {
	fe.t.Helper()
	task, err := m.Create(testContext(), id, fe.opts(name, id, group))
	if err != nil {
		fe.t.Fatalf("create %s with %s: %v", id, name, err)
	}
	return task.(*shimTask)
}

const opt = "options=" + fakeOptionsURL

// TestStartProtocol starts fakes of each generation twice: a 1.x or 2.0-2.2
// shim only ever the legacy way; a 2.3+ shim the legacy way once, refused,
// then with bootstrap parameters, which the daemon remembers for the next
// start. Either way the runtime options arrive, and the task answers over
// the task API version the shim serves.
func TestStartProtocol(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version int32
		calls   []string
	}{
		{fakeLegacy, 2, []string{"start_legacy_a_" + opt, "start_legacy_b_" + opt}},
		{fakeJSON, 2, []string{"start_legacy_a_" + opt, "start_legacy_b_" + opt}},
		{fakeBoot, 3, []string{"refuse_a", "start_bootstrap_a_" + opt, "start_bootstrap_b_" + opt}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fe := newFakeEnv(t)
			m := fe.manager()
			ctx := testContext()
			for _, id := range []string{"a", "b"} {
				s := fe.create(m, tc.name, id, "")
				if s.endpoint.Version != tc.version {
					t.Errorf("task %s: shim API version %d, want %d", id, s.endpoint.Version, tc.version)
				}
				ep, err := readEndpoint(s.bundle.path)
				if err != nil || *ep != *s.endpoint {
					t.Errorf("bootstrap.json of %s: %+v, %v; want %+v", id, ep, err, s.endpoint)
				}
				if _, err := s.Start(ctx); err != nil {
					t.Fatal(err)
				}
				if st, err := s.State(ctx); err != nil || st.Status != runtime.RunningStatus {
					t.Fatalf("state of %s = %+v, %v", id, st, err)
				}
				if stats, err := s.Stats(ctx); err != nil || string(stats.GetValue()) != id {
					t.Errorf("stats of %s = %v, %v", id, stats, err)
				}
			}
			if got := fe.calls(); !slices.Equal(got, tc.calls) {
				t.Errorf("shim calls = %q, want %q", got, tc.calls)
			}
			for _, id := range []string{"a", "b"} {
				task, _ := m.Get(ctx, id)
				if err := task.Kill(ctx, uint32(syscall.SIGKILL), false); err != nil {
					t.Fatal(err)
				}
				if exit, err := task.Wait(ctx); err != nil || exit.Status != 137 {
					t.Fatalf("exit of %s = %+v, %v", id, exit, err)
				}
				if exit, err := m.Delete(ctx, id); err != nil || exit.Status != 137 {
					t.Fatalf("delete %s = %+v, %v", id, exit, err)
				}
			}
		})
	}
}

// TestStartProtocolBinaryReplaced: what the daemon remembers is for the
// binary as it was; a binary replaced in place (another size or mtime) is
// detected anew.
func TestStartProtocolBinaryReplaced(t *testing.T) {
	fe := newFakeEnv(t)
	m := fe.manager()
	// A copy of its own, whose mtime the test may change.
	self, _ := os.Executable()
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(fe.shims, "copy")
	path := filepath.Join(dir, fakeBoot)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := fe.opts(fakeBoot, "a", "")
	opts.Runtime = path
	if _, err := m.Create(testContext(), "a", opts); err != nil {
		t.Fatal(err)
	}
	if _, p := m.startProtocol(path); p != protocolBootstrap {
		t.Fatalf("remembered %v, want bootstrap", p)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if _, p := m.startProtocol(path); p != protocolUnknown {
		t.Errorf("after the binary changed: %v, want unknown", p)
	}
}

// TestSharedShim runs two tasks of one group on one shim process, as a
// child subreaper (the daemon's way, which makes every shim its child):
// each task has its own connection; deleting one leaves the shim serving
// the other; the last one's deletion ends the shim, which is reaped once.
func TestSharedShim(t *testing.T) {
	for _, name := range []string{fakeLegacy, fakeBoot} {
		t.Run(name, func(t *testing.T) {
			if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
				t.Fatal(err)
			}
			defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
			fe := newFakeEnv(t)
			m := fe.manager()
			ctx := testContext()
			a := fe.create(m, name, "a", "pod")
			b := fe.create(m, name, "b", "pod")
			other := fe.create(m, name, "c", "")
			if a.shimPid == 0 || a.shimPid != b.shimPid || other.shimPid == a.shimPid {
				t.Fatalf("shim pids a=%d b=%d c=%d; want a and b on one shim, c on another", a.shimPid, b.shimPid, other.shimPid)
			}
			if a.client == b.client {
				t.Fatal("tasks of one shim share a connection")
			}
			if !a.child {
				t.Fatalf("shim %d is not our child", a.shimPid)
			}
			if n := m.procs.held(a.shimPid); n != 2 {
				t.Errorf("shim held by %d tasks, want 2", n)
			}
			for _, s := range []*shimTask{a, b} {
				if _, err := s.Start(ctx); err != nil {
					t.Fatal(err)
				}
			}

			start := time.Now()
			if _, err := m.Delete(ctx, "a"); err != nil {
				t.Fatal(err)
			}
			// The teardown in the background must neither wait for the
			// shim to exit nor end it.
			waitFor(t, "a's teardown", func() bool { return m.procs.held(a.shimPid) == 1 })
			if d := time.Since(start); d > shutdownTimeout/2 {
				t.Errorf("a's teardown took %v, as long as waiting out the shim", d)
			}
			if processGone(a.shimPid) {
				t.Fatal("shared shim exited with its first task")
			}
			if st, err := b.State(ctx); err != nil || st.Status != runtime.RunningStatus {
				t.Fatalf("b after a's deletion: %+v, %v", st, err)
			}
			if _, err := m.Get(ctx, "b"); err != nil {
				t.Fatal(err)
			}

			if err := b.Kill(ctx, uint32(syscall.SIGKILL), false); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Delete(ctx, "b"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the shim to exit and be reaped", func() bool { return processGone(a.shimPid) })
			// b's teardown runs in the background, as a's did: the shim
			// may be gone before it lets go of it.
			waitFor(t, "b's teardown to let go of the shim", func() bool { return m.procs.held(a.shimPid) == 0 })
			if processGone(other.shimPid) {
				t.Error("the shim of another group exited")
			}
		})
	}
}

// TestSharedShimKilled: a shim of several tasks killed with -9 takes them
// all; each is cleaned up with the shim's delete command and reported.
func TestSharedShimKilled(t *testing.T) {
	fe := newFakeEnv(t)
	m := fe.manager()
	ctx := testContext()
	exits := subscribe(t, fe.events, `topic=="/tasks/exit"`)
	deletes := subscribe(t, fe.events, `topic=="/tasks/delete"`)
	a := fe.create(m, fakeBoot, "a", "pod")
	fe.create(m, fakeBoot, "b", "pod")
	killShim(t, a)

	got := map[string]bool{}
	for range 2 {
		ev := decode[*eventsapi.TaskExit](t, waitEvent(t, exits, func(*events.Envelope) bool { return true }))
		got[ev.GetContainerId()] = ev.GetExitStatus() == 137
		decode[*eventsapi.TaskDelete](t, waitEvent(t, deletes, func(*events.Envelope) bool { return true }))
	}
	if !got["a"] || !got["b"] {
		t.Errorf("exits %v, want a and b with status 137", got)
	}
	waitFor(t, "both tasks to go", func() bool {
		tasks, _ := m.Tasks(ctx, true)
		return len(tasks) == 0
	})
	calls := fe.calls()
	for _, id := range []string{"a", "b"} {
		if !slices.Contains(calls, "delete_"+id) {
			t.Errorf("no shim delete for %s in %q", id, calls)
		}
		if _, err := m.Get(ctx, id); !errdefs.IsNotFound(err) {
			t.Errorf("get %s: %v, want not found", id, err)
		}
	}
}

// TestSharedShimRestart: a daemon restarted with several tasks on one shim
// (of either generation) takes each back on a connection of its own, over
// the task API its bootstrap.json names; the retired bundle of a task
// of the group deleted before the restart does not stop the shim, nor is
// waited out; the tasks are deleted one by one, and the shim exits after
// the last.
func TestSharedShimRestart(t *testing.T) {
	for _, name := range []string{fakeLegacy, fakeBoot} {
		t.Run(name, func(t *testing.T) { testSharedShimRestart(t, name) })
	}
}

func testSharedShimRestart(t *testing.T, name string) {
	fe := newFakeEnv(t)
	m1 := fe.manager()
	ctx := testContext()
	a := fe.create(m1, name, "a", "pod")
	fe.create(m1, name, "b", "pod")
	gone := fe.create(m1, name, "gone", "pod")
	if _, err := m1.Delete(ctx, gone.ID()); err != nil {
		t.Fatal(err)
	}
	m1.Close()
	// A retired bundle left behind by a daemon that died in the teardown.
	retired := filepath.Join(fe.state, testNamespace, ".gone.x")
	if err := os.MkdirAll(retired, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeEndpoint(&bundle{id: "gone", path: retired}, a.endpoint); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	m2 := fe.manager()
	if d := time.Since(start); d > shutdownTimeout/2 {
		t.Errorf("restart took %v, as long as waiting out the shared shim", d)
	}
	tasks, err := m2.Tasks(ctx, false)
	if err != nil || len(tasks) != 2 {
		t.Fatalf("tasks after restart = %v, %v", tasks, err)
	}
	if _, err := os.Stat(retired); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("retired bundle left: %v", err)
	}
	var ss []*shimTask
	for _, task := range tasks {
		s := task.(*shimTask)
		if s.shimPid != a.shimPid || s.endpoint.Version != a.endpoint.Version {
			t.Errorf("task %s on shim %d (API v%d), want %d (v%d)", s.ID(), s.shimPid, s.endpoint.Version, a.shimPid, a.endpoint.Version)
		}
		ss = append(ss, s)
	}
	if ss[0].client == ss[1].client {
		t.Fatal("tasks share a connection")
	}
	if _, err := m2.Delete(ctx, ss[0].ID()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if processGone(a.shimPid) {
		t.Fatal("shim exited with the first of its tasks")
	}
	if _, err := ss[1].State(ctx); err != nil {
		t.Fatalf("the other task after the first's deletion: %v", err)
	}
	if _, err := m2.Delete(ctx, ss[1].ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the shim to exit", func() bool { return processGone(a.shimPid) })
}

// TestBootstrapRefusedByLegacyShim: a shim known to want bootstrap
// parameters is given them at once; one that is not is never given them,
// since a 1.6 shim fed them fails only after it forked and wrote an
// address file (shown here by the fake, which does as 1.6 does).
func TestBootstrapRefusedByLegacyShim(t *testing.T) {
	fe := newFakeEnv(t)
	m := fe.manager()
	path := filepath.Join(fe.shims, fakeLegacy)
	key, _ := m.startProtocol(path)
	m.protocols.Store(key, protocolBootstrap)
	_, err := m.Create(testContext(), "a", fe.opts(fakeLegacy, "a", ""))
	if err == nil || !strings.Contains(err.Error(), "type with url a: not found") {
		t.Fatalf("legacy shim fed bootstrap parameters: %v", err)
	}
	// The failed create removed the bundle with the stale address file.
	if _, err := os.Stat(filepath.Join(fe.state, testNamespace, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bundle left: %v", err)
	}
	m.protocols.Delete(key)
	fe.create(m, fakeLegacy, "a", "")
	if _, p := m.startProtocol(path); p != protocolLegacy {
		t.Errorf("remembered %v, want legacy", p)
	}
}

// TestLegacyFailureIsNoRefusal: a legacy start that fails for another
// reason than the 2.3+ refusal is reported as it is, not retried with
// bootstrap parameters, and nothing is remembered of the binary.
func TestLegacyFailureIsNoRefusal(t *testing.T) {
	fe := newFakeEnv(t)
	m := fe.manager()
	opts := fe.opts(fakeLegacy, "a", "")
	opts.RuntimeOptions = &anypb.Any{TypeUrl: "types.containerd.io/unknown"}
	_, err := m.Create(testContext(), "a", opts)
	if err == nil || !strings.Contains(err.Error(), "type with url types.containerd.io/unknown: not found") {
		t.Fatalf("create with options the shim does not know: %v", err)
	}
	if calls := fe.calls(); len(calls) != 0 {
		t.Errorf("shim calls %q, want none that got as far as starting", calls)
	}
	if _, p := m.startProtocol(filepath.Join(fe.shims, fakeLegacy)); p != protocolUnknown {
		t.Errorf("remembered %v after a failed start", p)
	}
}

// TestJoinGroup: a task created with its group's task named (as the CRI
// names a pod's sandbox) is served by that task's shim without the shim
// binary's start being run for it, and is taken back after a restart like
// any task of the group; a group whose task is not there is left to the
// shim's start.
func TestJoinGroup(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	fe := newFakeEnv(t)
	m := fe.manager()
	ctx := testContext()
	sandbox := fe.create(m, fakeBoot, "pod", "pod")
	opts := fe.opts(fakeBoot, "b", "pod")
	opts.Group = "pod"
	task, err := m.Create(ctx, "b", opts)
	if err != nil {
		t.Fatal(err)
	}
	b := task.(*shimTask)
	if b.shimPid != sandbox.shimPid || b.endpoint.Address != sandbox.endpoint.Address {
		t.Fatalf("b on shim %d at %s, want the sandbox's %d at %s", b.shimPid, b.endpoint.Address, sandbox.shimPid, sandbox.endpoint.Address)
	}
	for _, c := range fe.calls() {
		if strings.HasSuffix(strings.SplitN(c, "_"+opt, 2)[0], "_b") {
			t.Errorf("the shim binary was run for b: %q", fe.calls())
		}
	}
	if _, err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}

	// A group whose task is not listed: the shim's start decides.
	opts = fe.opts(fakeBoot, "c", "gone")
	opts.Group = "gone"
	if _, err := m.Create(ctx, "c", opts); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(fe.calls(), "start_bootstrap_c_"+opt) {
		t.Errorf("no start for c in %q", fe.calls())
	}

	m.Close()
	m2 := fe.manager() // loads the tasks of the bundles
	got, err := m2.Get(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if got.(*shimTask).shimPid != sandbox.shimPid {
		t.Errorf("b after the restart on shim %d, want %d", got.(*shimTask).shimPid, sandbox.shimPid)
	}
	if st, err := got.State(ctx); err != nil || st.Status != runtime.RunningStatus {
		t.Errorf("b after the restart: %+v, %v", st, err)
	}
}
