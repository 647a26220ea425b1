package v2

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	ttrpcevents "github.com/llitfkitfk/containerd/api/services/ttrpc/events/v1"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/events/exchange"
	"github.com/llitfkitfk/containerd/internal/privaterun"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/runtime"
)

// Tests that run shims re-execute the test binary in a mount namespace of
// its own with a tmpfs on /run, so that the shim's sockets and runc's
// state never touch the host's /run/containerd (see package privaterun).
const inNamespaceEnv = "RUNTIME_V2_TEST_PRIVATE_RUN"

// shimReady says why shim tests cannot run here, or "" when they can.
var shimReady = "not set up"

func TestMain(m *testing.M) {
	if code, ok := runFakeShim(); ok {
		os.Exit(code)
	}
	// Fake shims are this binary; built with -race, each would sleep a
	// second as it exits, for races still to be reported.
	os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	if os.Getenv(inNamespaceEnv) == "" {
		if why := shimPrereqs(); why != "" {
			shimReady = why
			os.Exit(m.Run())
		}
		// The run's mark is in the environment of every shim it starts,
		// so that what a failed run leaves behind can be found.
		mark := fmt.Sprintf("%s=%d", inNamespaceEnv, os.Getpid())
		code, err := privaterun.Reexec(mark)
		privaterun.Sweep(mark, testNamespace)
		if err != nil {
			panic(err)
		}
		os.Exit(code)
	}
	if err := privaterun.Enter(); err != nil {
		panic(err)
	}
	shimReady = ""
	code := m.Run()
	privaterun.RemoveCgroupParents(testNamespace)
	os.Exit(code)
}

func shimPrereqs() string {
	if os.Geteuid() != 0 {
		return "needs root"
	}
	for _, bin := range []string{"containerd-shim-runc-v2", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			return bin + " not installed"
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		return "/bin/busybox not installed (apt-get install busybox-static)"
	}
	return ""
}

const testNamespace = "runtime-v2-test"

// env is a daemon's worth of runtime: directories, an event exchange that
// shims publish into over ttrpc, and a busybox root filesystem.
type env struct {
	t            *testing.T
	dir          string
	root, state  string
	address      string
	ttrpcAddress string
	events       *exchange.Exchange
	rootfs       string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if shimReady != "" {
		t.Fatalf("%s: `make test` installs the prerequisites", shimReady)
	}
	e := newBareEnv(t)
	e.rootfs = filepath.Join(e.dir, "rootfs")
	e.makeRootfs()
	return e
}

// newBareEnv is a daemon's paths under a temporary directory and its
// ttrpc events service, with no rootfs.
func newBareEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{
		t:            t,
		dir:          dir,
		root:         filepath.Join(dir, "root"),
		state:        filepath.Join(dir, "state"),
		address:      filepath.Join(dir, "containerd.sock"),
		ttrpcAddress: filepath.Join(dir, "containerd.sock.ttrpc"),
		events:       exchange.NewExchange(),
	}
	e.serveEvents()
	return e
}

// serveEvents is the daemon's ttrpc events service: what shims publish is
// forwarded into the exchange.
func (e *env) serveEvents() {
	srv, err := ttrpc.NewServer()
	if err != nil {
		e.t.Fatal(err)
	}
	ttrpcevents.RegisterEventsService(srv, forwarder{e.events})
	l, err := net.Listen("unix", e.ttrpcAddress)
	if err != nil {
		e.t.Fatal(err)
	}
	go srv.Serve(context.Background(), l)
	e.t.Cleanup(func() { srv.Close() })
}

type forwarder struct{ ex *exchange.Exchange }

func (f forwarder) Forward(ctx context.Context, req *ttrpcevents.ForwardRequest) (*emptypb.Empty, error) {
	env := req.GetEnvelope()
	err := f.ex.Forward(ctx, &events.Envelope{
		Timestamp: env.GetTimestamp().AsTime(),
		Namespace: env.GetNamespace(),
		Topic:     env.GetTopic(),
		Event:     env.GetEvent(),
	})
	return &emptypb.Empty{}, err
}

func (e *env) makeRootfs() {
	bin := filepath.Join(e.rootfs, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		e.t.Fatal(err)
	}
	data, err := os.ReadFile("/bin/busybox")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), data, 0o755); err != nil {
		e.t.Fatal(err)
	}
	for _, applet := range []string{"sh", "echo", "sleep", "cat", "true"} {
		if err := os.Symlink("busybox", filepath.Join(bin, applet)); err != nil {
			e.t.Fatal(err)
		}
	}
}

// manager starts a TaskManager on the env's directories. Whatever tasks
// are left when the test ends are killed and deleted.
func (e *env) manager() *TaskManager {
	e.t.Helper()
	m, err := New(context.Background(), &ManagerConfig{
		Root:         e.root,
		State:        e.state,
		Address:      e.address,
		TTRPCAddress: e.ttrpcAddress,
		Events:       e.events,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(testContext(), 30*time.Second)
		defer cancel()
		tasks, _ := m.Tasks(ctx, true)
		for _, task := range tasks {
			task.Kill(ctx, uint32(syscall.SIGKILL), true)
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
			task.Wait(wctx)
			wcancel()
			if _, err := m.Delete(ctx, task.ID()); err != nil {
				e.t.Logf("cleanup: delete %s: %v", task.ID(), err)
			}
		}
		m.Close()
	})
	return m
}

func testContext() context.Context {
	return namespaces.WithNamespace(context.Background(), testNamespace)
}

// createOpts runs args in the busybox rootfs, output to the file stdout.
func (e *env) createOpts(id, stdout string, args ...string) runtime.CreateOpts {
	return runtime.CreateOpts{
		Spec: &anypb.Any{
			TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec",
			Value:   specJSON(e.t, testNamespace, id, args),
		},
		Rootfs:  []mount.Mount{{Type: "bind", Source: e.rootfs, Options: []string{"rbind", "rw"}}},
		IO:      fileIO(stdout),
		Runtime: "io.containerd.runc.v2",
	}
}

// fileIO sends stdout and stderr to the file path, as ctr's --log-uri
// does; the shim needs both set for a file.
func fileIO(path string) runtime.IO {
	if path == "" {
		return runtime.IO{}
	}
	return runtime.IO{Stdout: "file://" + path, Stderr: "file://" + path}
}

var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

func processSpec(args []string) map[string]any {
	return map[string]any{
		"user": map[string]any{"uid": 0, "gid": 0},
		"args": args,
		"env":  []string{"PATH=/bin"},
		"cwd":  "/",
		"capabilities": map[string]any{
			"bounding": defaultCaps, "effective": defaultCaps, "permitted": defaultCaps,
		},
		"rlimits":         []any{map[string]any{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}},
		"noNewPrivileges": true,
	}
}

// specJSON is the essentials of what ctr 1.6 generates (oci.WithDefaultSpec).
func specJSON(t *testing.T, ns, id string, args []string) []byte {
	mnt := func(dest, typ, src string, opts ...string) map[string]any {
		return map[string]any{"destination": dest, "type": typ, "source": src, "options": opts}
	}
	spec := map[string]any{
		"ociVersion": "1.0.2-dev",
		"process":    processSpec(args),
		"root":       map[string]any{"path": "rootfs"},
		"hostname":   id,
		"mounts": []any{
			mnt("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
			mnt("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
			mnt("/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"),
			mnt("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k"),
			mnt("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
			mnt("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"),
			mnt("/run", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
		},
		"linux": map[string]any{
			"cgroupsPath": "/" + ns + "/" + id,
			"resources": map[string]any{
				"devices": []any{map[string]any{"allow": false, "access": "rwm"}},
			},
			"namespaces": []any{
				map[string]any{"type": "pid"}, map[string]any{"type": "ipc"},
				map[string]any{"type": "uts"}, map[string]any{"type": "mount"},
				map[string]any{"type": "network"},
			},
			"maskedPaths": []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
			},
			"readonlyPaths": []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
