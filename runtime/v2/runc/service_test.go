package runc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1/stats"
	gorunc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	eventsapi "github.com/llitfkitfk/containerd/api/events"
	taskapi "github.com/llitfkitfk/containerd/api/runtime/task/v2"
	"github.com/llitfkitfk/containerd/api/types"
	"github.com/llitfkitfk/containerd/api/types/runc/options"
	"github.com/llitfkitfk/containerd/api/types/task"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/runtime/v2/shim"
)

const testNS = "runc-shim-test"

// image is the busybox root filesystem every test container bind-mounts,
// made before any service reaps children; "" when containers cannot run.
var image string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		if testutil.CanRunContainers() == "" {
			dir, err := os.MkdirTemp("", "runc-shim-image")
			if err != nil {
				panic(err)
			}
			defer os.RemoveAll(dir)
			if err := testutil.BusyboxRootfs(dir); err != nil {
				panic(err)
			}
			image = dir
		}
		defer removeTestCgroups()
		return m.Run()
	}())
}

// removeTestCgroups removes the parent cgroups runc made for the tests'
// cgroupsPath (/runc-shim-test/<id>); runc removes only the leaves.
func removeTestCgroups() {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", testNS))
	if d := filepath.Join("/sys/fs/cgroup", testNS); isUnified() {
		dirs = []string{d}
	}
	for _, d := range dirs {
		_ = os.Remove(d)
	}
}

// env is one task service with a fake publisher, temporary bundles and
// its own runc root, and a busybox image the containers bind-mount.
type env struct {
	t         *testing.T
	s         *service
	pub       *testutil.Publisher
	dir       string
	runcRoot  string
	image     string
	shutdowns atomic.Int32

	mu     sync.Mutex
	events []testutil.Published
}

func newEnv(t *testing.T) *env {
	testutil.NeedContainers(t)
	dir := t.TempDir()
	e := &env{t: t, pub: &testutil.Publisher{}, dir: dir, runcRoot: filepath.Join(dir, "runc"), image: image}
	s, err := newService(context.Background(), shim.ServiceOpts{
		ID: "group", Namespace: testNS, Publisher: e.pub,
		Shutdown: func() { e.shutdowns.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	return e
}

func runcOptions(root string) *anypb.Any {
	b, err := proto.Marshal(&options.Options{Root: root})
	if err != nil {
		panic(err)
	}
	return &anypb.Any{TypeUrl: "containerd.runc.v1.Options", Value: b}
}

func ctx() context.Context { return context.Background() }

// create makes a container id running spec, its rootfs a bind mount of
// the image; req may set stdio. It is force-deleted when the test ends.
func (e *env) create(id string, spec *specs.Spec, req *taskapi.CreateTaskRequest) *taskapi.CreateTaskResponse {
	e.t.Helper()
	if req == nil {
		req = &taskapi.CreateTaskRequest{}
	}
	bundle := filepath.Join(e.dir, id)
	if spec.Linux.CgroupsPath == "" {
		spec.Linux.CgroupsPath = "/" + testNS + "/" + id
	}
	testutil.WriteBundle(e.t, bundle, spec)
	req.Id, req.Bundle, req.Options = id, bundle, runcOptions(e.runcRoot)
	req.Rootfs = []*types.Mount{{Type: "bind", Source: e.image, Options: []string{"rbind", "rw"}}}
	e.t.Cleanup(func() {
		// Through go-runc, whose monitor is the reaper: a plain exec.Cmd
		// would race it for the exit status.
		_ = newRunc(&options.Options{Root: e.runcRoot}, testNS).Delete(ctx(), id, &gorunc.DeleteOpts{Force: true})
		syscall.Unmount(filepath.Join(bundle, "rootfs"), syscall.MNT_DETACH)
	})
	resp, err := e.s.Create(ctx(), req)
	if err != nil {
		e.t.Fatalf("create %s: %v", id, err)
	}
	return resp
}

// fifo makes a fifo for a process's output and reads it until its end;
// the returned function waits for that end and returns what was read.
func (e *env) fifo(name string) (string, func() string) {
	path := filepath.Join(e.dir, name)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		e.t.Fatal(err)
	}
	var out []byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := os.Open(path) // waits for the shim to open it for writing
		if err != nil {
			return
		}
		defer f.Close()
		out, _ = io.ReadAll(f)
	}()
	return path, func() string {
		e.t.Helper()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			e.t.Fatalf("output fifo %s did not end", name)
		}
		return string(out)
	}
}

func (e *env) start(id, execID string) uint32 {
	e.t.Helper()
	resp, err := e.s.Start(ctx(), &taskapi.StartRequest{Id: id, ExecId: execID})
	if err != nil {
		e.t.Fatalf("start %s %s: %v", id, execID, err)
	}
	return resp.GetPid()
}

func (e *env) wait(id, execID string) *taskapi.WaitResponse {
	e.t.Helper()
	c, cancel := context.WithTimeout(ctx(), 20*time.Second)
	defer cancel()
	resp, err := e.s.Wait(c, &taskapi.WaitRequest{Id: id, ExecId: execID})
	if err != nil {
		e.t.Fatalf("wait %s %s: %v", id, execID, err)
	}
	return resp
}

func (e *env) state(id, execID string) *taskapi.StateResponse {
	e.t.Helper()
	resp, err := e.s.State(ctx(), &taskapi.StateRequest{Id: id, ExecId: execID})
	if err != nil {
		e.t.Fatalf("state %s %s: %v", id, execID, err)
	}
	return resp
}

func (e *env) exec(id, execID string, args []string, terminal bool, stdin, stdout string) {
	e.t.Helper()
	b, err := json.Marshal(specs.Process{Args: args, Cwd: "/", Env: []string{"PATH=/bin"}, Terminal: terminal})
	if err != nil {
		e.t.Fatal(err)
	}
	_, err = e.s.Exec(ctx(), &taskapi.ExecProcessRequest{Id: id, ExecId: execID, Terminal: terminal,
		Stdin: stdin, Stdout: stdout,
		Spec: &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", Value: b}})
	if err != nil {
		e.t.Fatalf("exec %s in %s: %v", execID, id, err)
	}
}

func (e *env) kill(id, execID string, sig syscall.Signal, all bool) {
	e.t.Helper()
	if _, err := e.s.Kill(ctx(), &taskapi.KillRequest{Id: id, ExecId: execID, Signal: uint32(sig), All: all}); err != nil {
		e.t.Fatalf("kill %s %s: %v", id, execID, err)
	}
}

func (e *env) delete(id, execID string) *taskapi.DeleteResponse {
	e.t.Helper()
	resp, err := e.s.Delete(ctx(), &taskapi.DeleteRequest{Id: id, ExecId: execID})
	if err != nil {
		e.t.Fatalf("delete %s %s: %v", id, execID, err)
	}
	return resp
}

// take returns every event published so far.
func (e *env) take() []testutil.Published {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, e.pub.Take()...)
	return append([]testutil.Published(nil), e.events...)
}

// waitEvent waits for an event on topic that match accepts, and returns
// its index among all events.
func (e *env) waitEvent(topic string, match func(proto.Message) bool) int {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for i, ev := range e.take() {
			if ev.Topic == topic && (match == nil || match(ev.Event)) {
				if ev.Namespace != testNS {
					e.t.Errorf("event %s in namespace %q, want %q", topic, ev.Namespace, testNS)
				}
				return i
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("no %s event; got %v", topic, topicsOf(e.take()))
	return -1
}

func topicsOf(evs []testutil.Published) []string {
	var ts []string
	for _, ev := range evs {
		ts = append(ts, ev.Topic)
	}
	return ts
}

func exitOf(containerID, id string) func(proto.Message) bool {
	return func(m proto.Message) bool {
		x, ok := m.(*eventsapi.TaskExit)
		return ok && x.GetContainerId() == containerID && x.GetId() == id
	}
}

// TestExitStatus: a task whose command exits 3 reports 3 through Wait,
// State, /tasks/exit and Delete, with its output through a fifo, and the
// events of its life in containerd's order.
func TestExitStatus(t *testing.T) {
	e := newEnv(t)
	stdout, output := e.fifo("stdout")
	created := e.create("exit3", testutil.ContainerSpec("sh", "-c", "echo hello; exit 3"),
		&taskapi.CreateTaskRequest{Stdout: stdout})
	if st := e.state("exit3", ""); st.GetStatus() != task.Status_CREATED || st.GetPid() != created.GetPid() || st.GetStdout() != stdout {
		t.Fatalf("state after create: %v", st)
	}
	pid := e.start("exit3", "")
	if pid != created.GetPid() {
		t.Errorf("start pid %d, create pid %d", pid, created.GetPid())
	}
	if w := e.wait("exit3", ""); w.GetExitStatus() != 3 || w.GetExitedAt() == nil {
		t.Fatalf("wait: %v, want exit status 3", w)
	}
	st := e.state("exit3", "")
	if st.GetStatus() != task.Status_STOPPED || st.GetExitStatus() != 3 || st.GetExitedAt() == nil {
		t.Fatalf("state after exit: %v", st)
	}
	if out := output(); out != "hello\n" {
		t.Errorf("output %q, want hello", out)
	}
	i := e.waitEvent("/tasks/exit", exitOf("exit3", "exit3"))
	if x := e.take()[i].Event.(*eventsapi.TaskExit); x.GetExitStatus() != 3 || x.GetPid() != pid {
		t.Errorf("exit event %v, want status 3 of pid %d", x, pid)
	}
	d := e.delete("exit3", "")
	if d.GetExitStatus() != 3 || d.GetPid() != pid {
		t.Errorf("delete: %v", d)
	}
	e.waitEvent("/tasks/delete", nil)
	if got, want := strings.Join(topicsOf(e.take()), " "), "/tasks/create /tasks/start /tasks/exit /tasks/delete"; got != want {
		t.Errorf("events %s, want %s", got, want)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "exit3", "rootfs", "bin")); err == nil {
		t.Error("rootfs still mounted after delete")
	}
	_, err := e.s.State(ctx(), &taskapi.StateRequest{Id: "exit3"})
	testutil.WantCode(t, err, codes.NotFound)
	if e.shutdowns.Load() != 0 {
		t.Error("shutdown without a Shutdown call")
	}
	if _, err := e.s.Shutdown(ctx(), &taskapi.ShutdownRequest{}); err != nil || e.shutdowns.Load() != 1 {
		t.Errorf("shutdown with no container left: %v, %d calls", err, e.shutdowns.Load())
	}
}

// TestTaskMethods drives one running container through the other methods
// and their errors.
func TestTaskMethods(t *testing.T) {
	e := newEnv(t)
	e.create("c1", testutil.ContainerSpec("sleep", "1000"), nil)

	_, err := e.s.Create(ctx(), &taskapi.CreateTaskRequest{Id: "c1", Bundle: filepath.Join(e.dir, "c1")})
	testutil.CheckCode(t, "create again", err, codes.AlreadyExists)
	_, err = e.s.State(ctx(), &taskapi.StateRequest{Id: "nope"})
	testutil.CheckCode(t, "state of unknown", err, codes.NotFound)
	_, err = e.s.Pause(ctx(), &taskapi.PauseRequest{Id: "c1"})
	testutil.CheckCode(t, "pause created", err, codes.FailedPrecondition)

	pid := e.start("c1", "")
	_, err = e.s.Start(ctx(), &taskapi.StartRequest{Id: "c1"})
	testutil.CheckCode(t, "start again", err, codes.FailedPrecondition)
	if st := e.state("c1", ""); st.GetStatus() != task.Status_RUNNING {
		t.Errorf("state after start: %v", st.GetStatus())
	}
	_, err = e.s.Delete(ctx(), &taskapi.DeleteRequest{Id: "c1"})
	testutil.CheckCode(t, "delete running", err, codes.FailedPrecondition)

	c, err := e.s.Connect(ctx(), &taskapi.ConnectRequest{Id: "c1"})
	if err != nil || c.GetShimPid() != uint32(os.Getpid()) || c.GetTaskPid() != pid || c.GetVersion() == "" {
		t.Errorf("connect: %v, %v", c, err)
	}

	// Exec exit codes, and an exec's events.
	e.exec("c1", "e5", []string{"sh", "-c", "exit 5"}, false, "", "")
	e.exec("c1", "e0", []string{"true"}, false, "", "")
	e.waitEvent("/tasks/exec-added", func(m proto.Message) bool { return m.(*eventsapi.TaskExecAdded).GetExecId() == "e5" })
	_, err = e.s.Exec(ctx(), &taskapi.ExecProcessRequest{Id: "c1", ExecId: "e5", Spec: &anypb.Any{Value: []byte(`{"args":["true"],"cwd":"/"}`)}})
	testutil.CheckCode(t, "exec with a used id", err, codes.AlreadyExists)
	epid := e.start("c1", "e5")
	e.start("c1", "e0")
	if w := e.wait("c1", "e5"); w.GetExitStatus() != 5 {
		t.Errorf("exec e5 exited %d, want 5", w.GetExitStatus())
	}
	if w := e.wait("c1", "e0"); w.GetExitStatus() != 0 {
		t.Errorf("exec e0 exited %d, want 0", w.GetExitStatus())
	}
	e.waitEvent("/tasks/exec-started", func(m proto.Message) bool {
		x := m.(*eventsapi.TaskExecStarted)
		return x.GetExecId() == "e5" && x.GetPid() == epid
	})
	e.waitEvent("/tasks/exit", func(m proto.Message) bool {
		x := m.(*eventsapi.TaskExit)
		return x.GetId() == "e5" && x.GetContainerId() == "c1" && x.GetExitStatus() == 5 && x.GetPid() == epid
	})
	if st := e.state("c1", "e5"); st.GetStatus() != task.Status_STOPPED || st.GetExitStatus() != 5 || st.GetExecId() != "e5" {
		t.Errorf("exec state: %v", st)
	}
	if d := e.delete("c1", "e5"); d.GetExitStatus() != 5 || d.GetPid() != epid {
		t.Errorf("delete exec: %v", d)
	}
	_, err = e.s.State(ctx(), &taskapi.StateRequest{Id: "c1", ExecId: "e5"})
	testutil.CheckCode(t, "state of deleted exec", err, codes.NotFound)

	// Stdin through a fifo, ended by CloseIO.
	stdinPath := filepath.Join(e.dir, "cat-stdin")
	if err := syscall.Mkfifo(stdinPath, 0o600); err != nil {
		t.Fatal(err)
	}
	catOut, catOutput := e.fifo("cat-stdout")
	e.exec("c1", "cat", []string{"cat"}, false, stdinPath, catOut)
	stdinW := make(chan *os.File, 1)
	go func() {
		f, _ := os.OpenFile(stdinPath, os.O_WRONLY, 0)
		stdinW <- f
	}()
	e.start("c1", "cat")
	w := <-stdinW
	if _, err := w.Write([]byte("via stdin\n")); err != nil {
		t.Fatal(err)
	}
	// A long-running exec is listed by Pids with its exec id.
	e.exec("c1", "sleeper", []string{"sleep", "1000"}, false, "", "")
	spid := e.start("c1", "sleeper")
	pids, err := e.s.Pids(ctx(), &taskapi.PidsRequest{Id: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	found := map[uint32]string{}
	for _, p := range pids.GetProcesses() {
		found[p.GetPid()] = ""
		if p.GetInfo() != nil {
			var d options.ProcessDetails
			if p.GetInfo().GetTypeUrl() != "containerd.runc.v1.ProcessDetails" || proto.Unmarshal(p.GetInfo().GetValue(), &d) != nil {
				t.Errorf("pid %d info %v", p.GetPid(), p.GetInfo())
			}
			found[p.GetPid()] = d.GetExecId()
		}
	}
	if id, ok := found[pid]; !ok || id != "" {
		t.Errorf("pids %v: init %d missing or with exec info", found, pid)
	}
	if found[spid] != "sleeper" {
		t.Errorf("pids %v: exec sleeper %d not named", found, spid)
	}
	if _, err := e.s.CloseIO(ctx(), &taskapi.CloseIORequest{Id: "c1", ExecId: "cat", Stdin: true}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if st := e.wait("c1", "cat"); st.GetExitStatus() != 0 {
		t.Errorf("cat exited %d after CloseIO", st.GetExitStatus())
	}
	if out := catOutput(); out != "via stdin\n" {
		t.Errorf("cat output %q", out)
	}

	// Kill an exec.
	e.kill("c1", "sleeper", syscall.SIGKILL, false)
	if w := e.wait("c1", "sleeper"); w.GetExitStatus() != 128+9 {
		t.Errorf("killed exec exited %d, want 137", w.GetExitStatus())
	}
	_, err = e.s.Kill(ctx(), &taskapi.KillRequest{Id: "c1", ExecId: "sleeper", Signal: 9})
	testutil.CheckCode(t, "kill exited exec", err, codes.NotFound)

	// Pause and resume.
	if _, err := e.s.Pause(ctx(), &taskapi.PauseRequest{Id: "c1"}); err != nil {
		t.Fatal(err)
	}
	if st := e.state("c1", ""); st.GetStatus() != task.Status_PAUSED {
		t.Errorf("state after pause: %v", st.GetStatus())
	}
	if freezer := readCgroup(t, "freezer", "c1", "freezer.state"); freezer != "FROZEN" {
		t.Errorf("freezer.state %q after pause", freezer)
	}
	e.exec("c1", "frozen", []string{"true"}, false, "", "")
	_, err = e.s.Start(ctx(), &taskapi.StartRequest{Id: "c1", ExecId: "frozen"})
	testutil.CheckCode(t, "start exec in paused", err, codes.FailedPrecondition)
	if _, err := e.s.Resume(ctx(), &taskapi.ResumeRequest{Id: "c1"}); err != nil {
		t.Fatal(err)
	}
	if st := e.state("c1", ""); st.GetStatus() != task.Status_RUNNING {
		t.Errorf("state after resume: %v", st.GetStatus())
	}
	e.waitEvent("/tasks/paused", nil)
	e.waitEvent("/tasks/resumed", nil)

	// Update: the resources are runtime-spec LinuxResources JSON.
	limit := int64(64 << 20)
	res, _ := json.Marshal(specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}})
	if _, err := e.s.Update(ctx(), &taskapi.UpdateTaskRequest{Id: "c1",
		Resources: &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources", Value: res}}); err != nil {
		t.Fatal(err)
	}
	if got := readCgroup(t, "memory", "c1", "memory.limit_in_bytes"); got != fmt.Sprint(limit) {
		t.Errorf("memory.limit_in_bytes %s after update, want %d", got, limit)
	}

	// Checkpoint needs CRIU.
	_, err = e.s.Checkpoint(ctx(), &taskapi.CheckpointTaskRequest{Id: "c1", Path: filepath.Join(e.dir, "ckpt")})
	if _, lerr := exec.LookPath("criu"); lerr != nil {
		testutil.CheckCode(t, "checkpoint without criu", err, codes.Unimplemented)
		if err != nil && !strings.Contains(err.Error(), "criu") {
			t.Errorf("checkpoint error does not name criu: %v", err)
		}
	}

	// Stats.
	st, err := e.s.Stats(ctx(), &taskapi.StatsRequest{Id: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetStats().GetTypeUrl() != "io.containerd.cgroups.v1.Metrics" {
		t.Errorf("stats type %q", st.GetStats().GetTypeUrl())
	}
	var m stats.Metrics
	if err := proto.Unmarshal(st.GetStats().GetValue(), &m); err != nil {
		t.Fatal(err)
	}
	if m.GetMemory().GetUsage().GetUsage() == 0 || m.GetMemory().GetUsage().GetLimit() != uint64(limit) {
		t.Errorf("memory metrics %v", m.GetMemory().GetUsage())
	}
	if m.GetPids().GetCurrent() == 0 {
		t.Errorf("pids metrics %v", m.GetPids())
	}

	// Kill init; Shutdown does nothing while the container is there.
	e.kill("c1", "", syscall.SIGKILL, false)
	if w := e.wait("c1", ""); w.GetExitStatus() != 128+9 {
		t.Errorf("init exited %d, want 137", w.GetExitStatus())
	}
	_, err = e.s.Kill(ctx(), &taskapi.KillRequest{Id: "c1", Signal: 9})
	testutil.CheckCode(t, "kill exited init", err, codes.NotFound)
	_, err = e.s.Exec(ctx(), &taskapi.ExecProcessRequest{Id: "c1", ExecId: "late", Spec: &anypb.Any{Value: []byte(`{"args":["true"],"cwd":"/"}`)}})
	testutil.CheckCode(t, "exec in stopped", err, codes.FailedPrecondition)
	e.s.Shutdown(ctx(), &taskapi.ShutdownRequest{})
	if e.shutdowns.Load() != 0 {
		t.Error("shutdown while a container is left")
	}
	e.delete("c1", "")
	if _, err := os.Stat(filepath.Join(e.runcRoot, testNS, "c1")); !os.IsNotExist(err) {
		t.Errorf("runc state of c1 left after delete: %v", err)
	}
}

// readCgroup reads a file of container id's cgroup (cgroup v1).
func readCgroup(t *testing.T, subsystem, id, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", subsystem, testNS, id, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestTerminal: a terminal task's output comes through the console, and
// ResizePty sizes it.
func TestTerminal(t *testing.T) {
	e := newEnv(t)
	stdout, output := e.fifo("tty-stdout")
	spec := testutil.ContainerSpec("sh", "-c", "sleep 0.2; stty size; tty")
	spec.Process.Terminal = true
	e.create("tty", spec, &taskapi.CreateTaskRequest{Terminal: true, Stdout: stdout})
	if _, err := e.s.ResizePty(ctx(), &taskapi.ResizePtyRequest{Id: "tty", Width: 123, Height: 45}); err != nil {
		t.Fatal(err)
	}
	e.start("tty", "")
	if w := e.wait("tty", ""); w.GetExitStatus() != 0 {
		t.Errorf("exit status %d", w.GetExitStatus())
	}
	e.delete("tty", "")
	out := output()
	if !strings.Contains(out, "45 123\r\n") || !strings.Contains(out, "/dev/pts/") {
		t.Errorf("terminal output %q, want the size 45 123 and a pts", out)
	}

	// An exec with a terminal of its own.
	e.create("tty2", testutil.ContainerSpec("sleep", "1000"), nil)
	e.start("tty2", "")
	execOut, execOutput := e.fifo("tty2-exec")
	e.exec("tty2", "t", []string{"sh", "-c", "sleep 0.2; stty size"}, true, "", execOut)
	_, err := e.s.ResizePty(ctx(), &taskapi.ResizePtyRequest{Id: "tty2", Width: 80, Height: 24})
	testutil.CheckCode(t, "resize init without terminal", err, codes.FailedPrecondition)
	e.start("tty2", "t")
	if _, err := e.s.ResizePty(ctx(), &taskapi.ResizePtyRequest{Id: "tty2", ExecId: "t", Width: 77, Height: 11}); err != nil {
		t.Fatal(err)
	}
	e.wait("tty2", "t")
	if out := execOutput(); out != "11 77\r\n" {
		t.Errorf("exec terminal output %q", out)
	}
	e.kill("tty2", "", syscall.SIGKILL, false)
	e.wait("tty2", "")
	e.delete("tty2", "")
}

// TestOOM: a container that outgrows its memory limit is killed, and
// /tasks/oom comes with its exit.
func TestOOM(t *testing.T) {
	e := newEnv(t)
	spec := testutil.ContainerSpec("tail", "/dev/zero")
	limit := int64(16 << 20)
	spec.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &limit}}
	e.create("oom", spec, nil)
	e.start("oom", "")
	if w := e.wait("oom", ""); w.GetExitStatus() != 128+9 {
		t.Errorf("exit status %d, want 137 (SIGKILL)", w.GetExitStatus())
	}
	e.waitEvent("/tasks/oom", func(m proto.Message) bool { return m.(*eventsapi.TaskOOM).GetContainerId() == "oom" })
	e.waitEvent("/tasks/exit", exitOf("oom", "oom"))
	e.delete("oom", "")
}

// TestGroup: two containers served by one service; the shim goes only
// once both are deleted.
func TestGroup(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"a", "b"} {
		spec := testutil.ContainerSpec("sleep", "1000")
		spec.Annotations = map[string]string{"io.kubernetes.cri.sandbox-id": "pod"}
		e.create(id, spec, nil)
		e.start(id, "")
	}
	for _, id := range []string{"a", "b"} {
		g, err := New().Group(shim.StartOpts{ID: id, Bundle: filepath.Join(e.dir, id)})
		if err != nil || g != "pod" {
			t.Errorf("group of %s: %q, %v", id, g, err)
		}
	}
	e.kill("a", "", syscall.SIGKILL, false)
	e.wait("a", "")
	if st := e.state("b", ""); st.GetStatus() != task.Status_RUNNING {
		t.Errorf("b is %v after a exited", st.GetStatus())
	}
	e.delete("a", "")
	e.s.Shutdown(ctx(), &taskapi.ShutdownRequest{Id: "a"})
	if e.shutdowns.Load() != 0 {
		t.Fatal("shutdown while b is left")
	}
	e.kill("b", "", syscall.SIGKILL, false)
	e.wait("b", "")
	e.delete("b", "")
	e.s.Shutdown(ctx(), &taskapi.ShutdownRequest{Id: "b"})
	if e.shutdowns.Load() != 1 {
		t.Fatal("no shutdown once the last container is deleted")
	}
}

// TestInitExitKillsExecs: in a container without a pid namespace of its
// own, the kernel leaves the execs running when init dies; the shim kills
// them and publishes their exits before init's.
func TestInitExitKillsExecs(t *testing.T) {
	for _, ownPidNS := range []bool{false, true} {
		t.Run(fmt.Sprintf("pidns=%v", ownPidNS), func(t *testing.T) {
			e := newEnv(t)
			spec := testutil.ContainerSpec("sleep", "1000")
			if !ownPidNS {
				spec.Linux.Namespaces = spec.Linux.Namespaces[1:] // drop pid
			}
			e.create("k", spec, nil)
			e.start("k", "")
			e.exec("k", "x1", []string{"sleep", "1000"}, false, "", "")
			e.exec("k", "x2", []string{"sleep", "1000"}, false, "", "")
			e.start("k", "x1")
			e.start("k", "x2")
			e.kill("k", "", syscall.SIGKILL, false)
			for _, x := range []string{"x1", "x2"} {
				if w := e.wait("k", x); w.GetExitStatus() != 128+9 {
					t.Errorf("exec %s exited %d, want 137", x, w.GetExitStatus())
				}
			}
			e.wait("k", "")
			last := e.waitEvent("/tasks/exit", exitOf("k", "k"))
			for _, x := range []string{"x1", "x2"} {
				if i := e.waitEvent("/tasks/exit", exitOf("k", x)); i > last {
					t.Errorf("exit of exec %s published after init's", x)
				}
			}
			e.delete("k", "")
		})
	}
}

// TestFastExits: execs that exit at once, before runc exec has returned
// and the service knows their pids, still report their exit. Without the
// start window of the service their exits would be lost and Wait would
// never return.
func TestFastExits(t *testing.T) {
	e := newEnv(t)
	e.create("fast", testutil.ContainerSpec("sleep", "1000"), nil)
	e.start("fast", "")
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("x%d", i)
		e.exec("fast", id, []string{"sh", "-c", fmt.Sprintf("exit %d", i)}, false, "", "")
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.s.Start(ctx(), &taskapi.StartRequest{Id: "fast", ExecId: id}); err != nil {
				t.Errorf("start %s: %v", id, err)
			}
		}()
	}
	wg.Wait()
	for i := 0; i < 20; i++ {
		if w := e.wait("fast", fmt.Sprintf("x%d", i)); w.GetExitStatus() != uint32(i) {
			t.Errorf("exec x%d exited %d", i, w.GetExitStatus())
		}
	}
	e.kill("fast", "", syscall.SIGKILL, false)
	e.wait("fast", "")
	e.delete("fast", "")
}

// TestStop: the delete command cleans up the container of a shim that is
// gone: runc's state and the rootfs mount go, init is reported killed.
func TestStop(t *testing.T) {
	e := newEnv(t)
	e.create("gone", testutil.ContainerSpec("sleep", "1000"), nil)
	pid := e.start("gone", "")
	bundle := filepath.Join(e.dir, "gone")
	resp, err := New().Stop(ctx(), shim.StartOpts{ID: "gone", Namespace: testNS, Bundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetPid() != pid || resp.GetExitStatus() != 128+9 || resp.GetExitedAt() == nil {
		t.Errorf("stop: %v, want pid %d status 137", resp, pid)
	}
	if _, err := os.Stat(filepath.Join(e.runcRoot, testNS, "gone")); !os.IsNotExist(err) {
		t.Errorf("runc still knows the container: %v", err)
	}
	if _, err := os.Stat(filepath.Join(bundle, "rootfs", "bin")); err == nil {
		t.Error("rootfs still mounted")
	}
	if err := syscall.Kill(int(pid), 0); err == nil {
		t.Error("init still running")
	}
}

// TestBinaryLog: binary:// stdout goes to a logging binary that reads the
// container's output on fds 3 and 4 once it said it was ready on fd 5.
func TestBinaryLog(t *testing.T) {
	e := newEnv(t)
	logFile := filepath.Join(e.dir, "logger-output")
	script := filepath.Join(e.dir, "logger.sh")
	if err := os.WriteFile(script, []byte(`#!/bin/sh
echo "id=$CONTAINER_ID ns=$CONTAINER_NAMESPACE arg=$1$2" > "$LOGFILE"
exec 5>&-
cat <&3 >> "$LOGFILE" &
cat <&4 >> "$LOGFILE"
wait
`), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOGFILE", logFile)
	uri := "binary://" + script + "?-k=v"
	e.create("logged", testutil.ContainerSpec("sh", "-c", "echo out; echo err >&2"), &taskapi.CreateTaskRequest{Stdout: uri, Stderr: uri})
	e.start("logged", "")
	e.wait("logged", "")
	e.delete("logged", "") // waits for the logger to finish
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	if !strings.HasPrefix(got, "id=logged ns="+testNS+" arg=-kv\n") || !strings.Contains(got, "out\n") || !strings.Contains(got, "err\n") {
		t.Errorf("logged %q", got)
	}
}

// TestFileLog: file:// stdout appends both streams to the file.
func TestFileLog(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "logs", "out.log")
	uri := "file://" + path
	e.create("f", testutil.ContainerSpec("sh", "-c", "echo out; echo err >&2"), &taskapi.CreateTaskRequest{Stdout: uri, Stderr: uri})
	e.start("f", "")
	e.wait("f", "")
	e.delete("f", "")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); !strings.Contains(got, "out\n") || !strings.Contains(got, "err\n") {
		t.Errorf("file holds %q", got)
	}
}

// TestCreateFailure: runc's own error reaches the caller, and a failed
// Create leaves nothing behind: no mount, no runc state, the id free.
func TestCreateFailure(t *testing.T) {
	e := newEnv(t)
	bundle := filepath.Join(e.dir, "bad")
	spec := testutil.ContainerSpec("/no/such/binary")
	spec.Linux.CgroupsPath = "/" + testNS + "/bad"
	testutil.WriteBundle(t, bundle, spec)
	req := &taskapi.CreateTaskRequest{Id: "bad", Bundle: bundle, Options: runcOptions(e.runcRoot),
		Rootfs: []*types.Mount{{Type: "bind", Source: e.image, Options: []string{"rbind", "rw"}}}}
	_, err := e.s.Create(ctx(), req)
	if err == nil || !strings.Contains(err.Error(), "/no/such/binary") {
		t.Fatalf("create of a missing binary: %v, want runc's error naming it", err)
	}
	if _, err := os.Stat(filepath.Join(bundle, "rootfs", "bin")); err == nil {
		t.Error("rootfs still mounted after a failed create")
	}
	if _, err := os.Stat(filepath.Join(e.runcRoot, testNS, "bad")); !os.IsNotExist(err) {
		t.Errorf("runc state left after a failed create: %v", err)
	}
	_, err = e.s.State(ctx(), &taskapi.StateRequest{Id: "bad"})
	testutil.CheckCode(t, "state after failed create", err, codes.NotFound)

	// A created container that never starts can be deleted.
	e.create("never", testutil.ContainerSpec("true"), nil)
	d := e.delete("never", "")
	if d.GetPid() == 0 {
		t.Errorf("delete of created: %v", d)
	}
	e.waitEvent("/tasks/delete", func(m proto.Message) bool { return m.(*eventsapi.TaskDelete).GetContainerId() == "never" })
	if _, err := os.Stat(filepath.Join(e.runcRoot, testNS, "never")); !os.IsNotExist(err) {
		t.Errorf("runc state left after delete: %v", err)
	}
}

// Ids name files and runc state: ones that could climb out of the bundle
// are refused, whichever daemon sent them, and nothing is written.
func TestHostileIDs(t *testing.T) {
	e := newEnv(t)
	bundle := filepath.Join(e.dir, "b")
	testutil.WriteBundle(t, bundle, testutil.ContainerSpec("true"))
	for _, id := range []string{"", "../escape", "a/b", "."} {
		_, err := e.s.Create(ctx(), &taskapi.CreateTaskRequest{Id: id, Bundle: bundle, Options: runcOptions(e.runcRoot)})
		testutil.CheckCode(t, "create "+id, err, codes.InvalidArgument)
	}

	e.create("c", testutil.ContainerSpec("sleep", "100"), nil)
	e.start("c", "")
	b, _ := json.Marshal(specs.Process{Args: []string{"true"}, Cwd: "/"})
	for _, id := range []string{"", "../../escape", "x/y"} {
		_, err := e.s.Exec(ctx(), &taskapi.ExecProcessRequest{Id: "c", ExecId: id,
			Spec: &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", Value: b}})
		testutil.CheckCode(t, "exec "+id, err, codes.InvalidArgument)
	}
	if matches, _ := filepath.Glob(filepath.Join(e.dir, "escape*")); len(matches) > 0 {
		t.Errorf("files written outside the bundle: %v", matches)
	}
	e.kill("c", "", syscall.SIGKILL, false)
	e.wait("c", "")
	e.delete("c", "")
}
