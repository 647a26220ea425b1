package shim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	bootstrap "github.com/llitfkitfk/containerd/api/runtime/bootstrap/v1"
	taskapi "github.com/llitfkitfk/containerd/api/runtime/task/v2"
	"github.com/llitfkitfk/containerd/api/types"
	"github.com/llitfkitfk/containerd/internal/testutil/ttrpcevents"
	"github.com/llitfkitfk/containerd/sys"
)

// shimResult is how a shim command ended.
type shimResult struct {
	stdout, stderr []byte
	code           int
}

// runShim runs the test binary as the shim, in dir, with env added and
// stdin, as a daemon runs a shim command.
func runShim(t *testing.T, dir string, env []string, stdin []byte, args ...string) shimResult {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = dir
	cmd.Env = append(withEnv(os.Environ(), ttrpcAddressEnv, ""), append([]string{asShimEnv + "=1"}, env...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// As the daemon does: a shim that leaks our pipes is not waited for.
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run shim %v: %v", args, err)
	}
	return shimResult{stdout.Bytes(), stderr.Bytes(), cmd.ProcessState.ExitCode()}
}

// startShim runs start and checks it succeeded quietly; it returns what
// it printed.
func startShim(t *testing.T, bundle string, env []string, stdin []byte, args ...string) []byte {
	t.Helper()
	r := runShim(t, bundle, env, stdin, append(args, "start")...)
	if r.code != 0 || len(r.stderr) != 0 {
		t.Fatalf("start: exit %d, stderr %q, stdout %q", r.code, r.stderr, r.stdout)
	}
	return r.stdout
}

type taskClient struct {
	taskapi.TaskService
	c *ttrpc.Client
}

func dialTask(t *testing.T, address string) taskClient {
	t.Helper()
	conn, err := net.DialTimeout("unix", unixPath(address), 5*time.Second)
	if err != nil {
		t.Fatalf("dial shim at %s: %v", address, err)
	}
	c := ttrpc.NewClient(conn)
	t.Cleanup(func() { c.Close() })
	return taskClient{taskapi.NewTaskClient(c), c}
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func shimPid(t *testing.T, c taskClient) int {
	t.Helper()
	resp, err := c.Connect(callCtx(t), &taskapi.ConnectRequest{})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return int(resp.ShimPid)
}

// shutdownShim asks the shim at address to exit and waits until it did,
// its socket gone with it.
func shutdownShim(t *testing.T, address string, pid int) {
	t.Helper()
	c := dialTask(t, address)
	if _, err := c.Shutdown(callCtx(t), &taskapi.ShutdownRequest{}); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	waitGone(t, pid)
	if _, err := os.Stat(unixPath(address)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the shim left its socket behind: %v", err)
	}
}

// waitGone waits until process pid has exited.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 500; i++ {
		state, _ := procStat(pid)
		if state == "" || state == "Z" {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("shim %d still runs", pid)
}

// procStat returns the state and session id of process pid, "" if it is
// gone.
func procStat(pid int) (state string, sid int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0
	}
	// pid (comm) state ppid pgrp session ...
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	sid, _ = strconv.Atoi(fields[3])
	return fields[0], sid
}

// logFifo makes the bundle's log fifo and reads it as our daemon does; it
// returns what was logged so far.
func readLogFifo(t *testing.T, bundle string) func() string {
	path := filepath.Join(bundle, logFifo)
	if err := unix.Mkfifo(path, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		lines strings.Builder
	)
	go func() {
		s := bufio.NewScanner(f)
		for s.Scan() {
			mu.Lock()
			lines.WriteString(s.Text() + "\n")
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { f.Close() })
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		return lines.String()
	}
}

func needPrivateRun(t *testing.T) {
	if !privateRun {
		t.Skip("start without a socket_dir uses /run/containerd/s: needs root for a private /run")
	}
}

// TestStartServeOldProtocol starts a shim as containerd 1.6 and our
// daemon do (options on stdin, TTRPC_ADDRESS, a plain address back),
// drives it, has a second task of its group join it, and shuts it down.
func TestStartServeOldProtocol(t *testing.T) {
	needPrivateRun(t)
	events := ttrpcevents.Serve(t, filepath.Join(t.TempDir(), "events.ttrpc"))
	env := []string{ttrpcAddressEnv + "=" + events.Path}
	bundle := t.TempDir()
	logs := readLogFifo(t, bundle)
	args := []string{"-namespace", "ns1", "-address", "/run/test/d.sock", "-publish-binary", "/bin/false", "-debug"}

	out := startShim(t, bundle, env, mustMarshal(t, runcOptions), append(args, "-id", "t1")...)
	path, _ := socketPath("", "/run/test/d.sock", "ns1", "t1")
	address := "unix://" + path
	if string(out) != address {
		t.Fatalf("start printed %q, want %q", out, address)
	}
	if b, err := os.ReadFile(filepath.Join(bundle, addressFile)); err != nil || string(b) != address {
		t.Errorf("address file %q, %v", b, err)
	}

	c := dialTask(t, address)
	pid := shimPid(t, c)
	defer syscall.Kill(pid, syscall.SIGKILL)
	if _, sid := procStat(pid); sid != pid {
		t.Errorf("shim %d is in session %d, not its own", pid, sid)
	}
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); cwd != bundle {
		t.Errorf("shim runs in %s, want the bundle %s", cwd, bundle)
	}
	if ours, err := sys.GetOOMScore(os.Getpid()); err == nil {
		if got, _ := sys.GetOOMScore(pid); got != min(ours+1, sys.OOMScoreAdjMax) {
			t.Errorf("shim OOM score %d, want the daemon's %d + 1", got, ours)
		}
	}
	st, err := c.State(callCtx(t), &taskapi.StateRequest{Id: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Stdout != "t1/ns1" {
		t.Errorf("service options id/namespace %q, want t1/ns1", st.Stdout)
	}

	// Its events reach the daemon's ttrpc address, in its namespace.
	if _, err := c.Create(callCtx(t), &taskapi.CreateTaskRequest{Id: "t1", Bundle: bundle}); err != nil {
		t.Fatal(err)
	}
	got := events.WaitFor(1, 10*time.Second)[0]
	if got.Envelope.Namespace != "ns1" || got.MetadataNS != "ns1" || got.Envelope.Topic != "/tasks/create" ||
		got.Envelope.Event.GetTypeUrl() != "containerd.events.TaskCreate" || got.Envelope.Timestamp == nil {
		t.Errorf("forwarded %v (metadata namespace %q)", got.Envelope, got.MetadataNS)
	}
	if l := logs(); !strings.Contains(l, "shim serving") || !strings.Contains(l, "level=debug") {
		t.Errorf("the log fifo has no debug line of the shim: %q", l)
	}
	// SIGUSR1 logs the goroutines' stacks.
	syscall.Kill(pid, syscall.SIGUSR1)
	for i := 0; i < 200 && !strings.Contains(logs(), "end of goroutine stacks"); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if l := logs(); !strings.Contains(l, "goroutine stacks") || !strings.Contains(l, "runtime/v2/shim.serve") {
		t.Errorf("no stacks logged on SIGUSR1: %q", l)
	}

	// A second task of its group joins it; a 2.0-2.2 daemon gets JSON.
	bundle2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(bundle2, "group"), []byte("t1"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = startShim(t, bundle2, append(env, maxShimVersionEnv+"=2"), nil, append(args, "-id", "t2")...)
	want := `{"version":2,"address":"` + address + `","protocol":"ttrpc"}`
	if string(out) != want {
		t.Errorf("second start printed %s, want %s", out, want)
	}
	if b, err := os.ReadFile(filepath.Join(bundle2, addressFile)); err != nil || string(b) != address {
		t.Errorf("second bundle's address file %q, %v", b, err)
	}
	if p := shimPid(t, dialTask(t, address)); p != pid {
		t.Errorf("second task is served by %d, want the group's shim %d", p, pid)
	}

	shutdownShim(t, address, pid)
}

// TestStartReplacesDeadShim: a shim killed leaves its socket; the next
// start of its group finds it stale and starts a new shim.
func TestStartReplacesDeadShim(t *testing.T) {
	needPrivateRun(t)
	bundle := t.TempDir()
	args := []string{"-namespace", "ns1", "-address", "/run/test/dead.sock", "-id", "t1"}
	address := string(startShim(t, bundle, nil, nil, args...))
	pid := shimPid(t, dialTask(t, address))
	syscall.Kill(pid, syscall.SIGKILL)
	waitGone(t, pid)
	if _, err := os.Stat(unixPath(address)); err != nil {
		t.Fatalf("the test's premise: a killed shim leaves its socket: %v", err)
	}

	if again := string(startShim(t, bundle, nil, nil, args...)); again != address {
		t.Fatalf("restart printed %q, want %q", again, address)
	}
	pid2 := shimPid(t, dialTask(t, address))
	defer syscall.Kill(pid2, syscall.SIGKILL)
	if pid2 == pid {
		t.Fatal("the dead shim answered")
	}
	shutdownShim(t, address, pid2)
}

// TestStartBootstrapProtocol starts a shim as containerd 2.3+ does:
// everything in BootstrapParams on stdin, nothing in the environment but
// MAX_SHIM_VERSION, which 2.4 sets too.
func TestStartBootstrapProtocol(t *testing.T) {
	events := ttrpcevents.Serve(t, filepath.Join(t.TempDir(), "events.ttrpc"))
	socketDir, err := os.MkdirTemp("", "shimsock")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(socketDir)
	bundle := t.TempDir()
	readLogFifo(t, bundle)
	params := &bootstrap.BootstrapParams{
		InstanceId:             "t1",
		Namespace:              "ns2",
		LogLevel:               bootstrap.LogLevel_LOG_LEVEL_INFO,
		ContainerdGrpcAddress:  "/run/test/c2.sock",
		ContainerdTtrpcAddress: events.Path,
		ContainerdBinary:       "/bin/false",
		Extensions:             []*bootstrap.Extension{{Value: runcOptions}},
		SocketDir:              &socketDir,
	}
	out := startShim(t, bundle, []string{maxShimVersionEnv + "=2"}, mustMarshal(t, params),
		"-namespace", "ns2", "-address", "/run/test/c2.sock", "-publish-binary", "/bin/false", "-id", "t1")
	var result bootstrap.BootstrapResult
	if err := proto.Unmarshal(out, &result); err != nil {
		t.Fatalf("answer %q is no BootstrapResult: %v", out, err)
	}
	path, _ := socketPath(socketDir, "/run/test/c2.sock", "ns2", "t1")
	if result.Version != 2 || result.Protocol != "ttrpc" || result.Address != "unix://"+path {
		t.Fatalf("bootstrap result %v, want version 2 over ttrpc at unix://%s", &result, path)
	}
	c := dialTask(t, result.Address)
	pid := shimPid(t, c)
	defer syscall.Kill(pid, syscall.SIGKILL)

	// The ttrpc address came on stdin only: the serving shim has it.
	if _, err := c.Create(callCtx(t), &taskapi.CreateTaskRequest{Id: "t1"}); err != nil {
		t.Fatal(err)
	}
	if got := events.WaitFor(1, 10*time.Second)[0]; got.Envelope.Namespace != "ns2" {
		t.Errorf("forwarded in namespace %q, want ns2", got.Envelope.Namespace)
	}
	shutdownShim(t, result.Address, pid)
}

// TestStartFailureLeavesNoShim: a start that fails after forking the
// serving shim kills it and removes its socket.
func TestStartFailureLeavesNoShim(t *testing.T) {
	socketDir, err := os.MkdirTemp("", "shimsock")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(socketDir)
	bundle := t.TempDir()
	// The address file cannot be written: a directory is in its place.
	if err := os.Mkdir(filepath.Join(bundle, addressFile), 0o755); err != nil {
		t.Fatal(err)
	}
	params := &bootstrap.BootstrapParams{InstanceId: "t1", Namespace: "ns3", SocketDir: &socketDir}
	r := runShim(t, bundle, nil, mustMarshal(t, params), "-namespace", "ns3", "-id", "t1", "start")
	if r.code == 0 || !strings.Contains(string(r.stderr), "address") || len(r.stdout) != 0 {
		t.Fatalf("start: exit %d, stderr %q, stdout %q; want a failure naming the address file", r.code, r.stderr, r.stdout)
	}
	if entries, _ := os.ReadDir(socketDir); len(entries) != 0 {
		t.Errorf("socket left behind: %v", entries)
	}
	if pids := processesIn(bundle); len(pids) != 0 {
		t.Errorf("processes left running in the bundle: %v", pids)
	}
}

// processesIn returns the live processes whose working directory is dir.
func processesIn(dir string) []int {
	var pids []int
	cwds, _ := filepath.Glob("/proc/[0-9]*/cwd")
	for _, c := range cwds {
		if target, err := os.Readlink(c); err == nil && target == dir {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(c)))
			if state, _ := procStat(pid); state != "" && state != "Z" {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func TestDelete(t *testing.T) {
	bundle := t.TempDir()
	r := runShim(t, t.TempDir(), nil, nil, "-namespace", "ns1", "-address", "/run/test/d.sock", "-id", "t1", "-bundle", bundle, "delete")
	if r.code != 0 {
		t.Fatalf("delete: exit %d, stderr %q", r.code, r.stderr)
	}
	var resp taskapi.DeleteResponse
	if err := proto.Unmarshal(r.stdout, &resp); err != nil {
		t.Fatalf("delete printed %q, no DeleteResponse: %v", r.stdout, err)
	}
	if resp.Pid != 42 || resp.ExitStatus != 137 || !resp.ExitedAt.AsTime().Equal(fakeExitedAt) {
		t.Errorf("delete response %v", &resp)
	}
	if !strings.Contains(string(r.stderr), "nothing to clean up") {
		t.Errorf("the runtime's warning is not on stderr: %q", r.stderr)
	}

	// The bundle defaults to the working directory; a failure is an exit
	// status and a message, with nothing on stdout.
	if err := os.WriteFile(filepath.Join(bundle, "stop-error"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r = runShim(t, bundle, nil, nil, "-namespace", "ns1", "-id", "t1", "delete")
	if r.code != 1 || len(r.stdout) != 0 || !strings.Contains(string(r.stderr), "says no") {
		t.Errorf("failed delete: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestCommandLineErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-id", "t1", "start"}, 1, "namespace"},
		{[]string{"-namespace", "ns1", "start"}, 1, "-id"},
		{[]string{"-namespace", "ns1", "-id", "t1", "launch"}, 1, "launch"},
		{[]string{"-nosuchflag", "start"}, 2, "nosuchflag"},
	} {
		r := runShim(t, dir, nil, nil, c.args...)
		if r.code != c.code || !strings.Contains(string(r.stderr), c.want) || len(r.stdout) != 0 {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit %d naming %q", c.args, r.code, r.stderr, r.stdout, c.code, c.want)
		}
	}
	r := runShim(t, dir, nil, nil, "-v")
	if r.code != 0 || !strings.Contains(string(r.stdout), "Version:") {
		t.Errorf("-v: exit %d, stdout %q", r.code, r.stdout)
	}
}

// TestInfo: -info, as containerd 2.x runs it: options on stdin, a
// RuntimeInfo on stdout; no namespace needed.
func TestInfo(t *testing.T) {
	r := runShim(t, t.TempDir(), nil, mustMarshal(t, runcOptions), "-info")
	if r.code != 0 {
		t.Fatalf("-info: exit %d, stderr %q", r.code, r.stderr)
	}
	var info types.RuntimeInfo
	if err := proto.Unmarshal(r.stdout, &info); err != nil {
		t.Fatalf("-info printed %q: %v", r.stdout, err)
	}
	if info.Name != "io.containerd.fake.v2" || info.Version.GetVersion() == "" || !proto.Equal(info.Options, runcOptions) {
		t.Errorf("runtime info %v", &info)
	}
}

// TestSignalEndsShim: SIGTERM and SIGINT end the shim as Shutdown does,
// taking its socket along, but not a socket that replaced its own.
func TestSignalEndsShim(t *testing.T) {
	socketDir, err := os.MkdirTemp("", "shimsock")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(socketDir)
	bundle := t.TempDir()
	params := mustMarshal(t, &bootstrap.BootstrapParams{InstanceId: "t1", Namespace: "ns4", SocketDir: &socketDir})
	start := func() (string, int) {
		var result bootstrap.BootstrapResult
		if err := proto.Unmarshal(startShim(t, bundle, nil, params, "-namespace", "ns4", "-id", "t1"), &result); err != nil {
			t.Fatal(err)
		}
		pid := shimPid(t, dialTask(t, result.Address))
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
		return unixPath(result.Address), pid
	}

	path, pid := start()
	syscall.Kill(pid, syscall.SIGTERM)
	waitGone(t, pid)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the shim left its socket behind: %v", err)
	}

	// Another shim's socket now in its place: it stays.
	path, pid = start()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	successor, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer successor.Close()
	syscall.Kill(pid, syscall.SIGINT)
	waitGone(t, pid)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the exiting shim removed its successor's socket: %v", err)
	}
	c.Close()
}
