package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/llitfkitfk/containerd/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/emptypb"

	"google.golang.org/protobuf/proto"

	bootstrapapi "github.com/llitfkitfk/containerd/api/runtime/bootstrap/v1"
	taskapi "github.com/llitfkitfk/containerd/api/runtime/task/v2"
	evttrpc "github.com/llitfkitfk/containerd/api/services/ttrpc/events/v1"
)

// The shim workload drives each daemon's shim binary directly, as a daemon
// does: start command, dial, Connect; Create, Start and Wait of a container
// running `true`; Delete; Shutdown and the shim's exit. No daemon is in
// the way, so each step is the shim's (and the runc it runs) alone. The
// shims alternate container by container. Last, each shim serves a running
// container while its resident memory is read.
var shimWorkload = &workload{
	name: "shim",
	about: "our containerd-shim-runc-v2 and containerd 2.x's (-theirs-shim) driven directly over ttrpc: start to first answer, Create, Start, " +
		"Wait, Delete, exit, for a container running `true`, shims alternating; and a running shim's RSS",
	params: func(o options) string {
		return fmt.Sprintf("%d containers each", o.rounds*shimRunsPerRound)
	},
	compare: compareShims,
}

const (
	shimRunsPerRound = 20
	// shimNamespace is the namespace the shims are started in; their runc
	// state goes under /run/containerd/runc/<it>, in the bench's own /run.
	shimNamespace = "containerd-bench"
	// shimCgroupParent holds the containers' cgroups, removed at the end.
	shimCgroupParent = "containerd-bench-shim"
)

// shimSteps are the timed steps of one container's life under a shim.
var shimSteps = []string{"start to first answer", "Create", "Start", "Wait (`true` exits)", "Delete", "Shutdown to exit"}

func compareShims(ctx context.Context, b *bench) (*table, error) {
	if !privateRun {
		return nil, errors.New("running containers needs root, for a private /run")
	}
	dir, err := b.newDir("shims")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	defer removeCgroupParent(shimCgroupParent)
	r, err := newShimRig(b, dir)
	if err != nil {
		return nil, err
	}
	defer r.close()

	flavors := []*flavor{b.ours, b.theirs}
	for _, f := range flavors { // page cache
		if _, err := r.cycle(ctx, f, "warm-up", nil); err != nil {
			return nil, fmt.Errorf("%s shim %s: %w", f.name, f.shim, err)
		}
	}
	steps := map[*flavor][][]time.Duration{}
	n := b.opts.rounds * shimRunsPerRound
	for i := range n {
		for _, f := range b.order(i) {
			took, err := r.cycle(ctx, f, fmt.Sprintf("c%d", i), nil)
			if err != nil {
				return nil, fmt.Errorf("%s shim, container %d: %w", f.name, i+1, err)
			}
			steps[f] = append(steps[f], took)
		}
	}
	rss := map[*flavor]float64{}
	for _, f := range flavors {
		_, err := r.cycle(ctx, f, "rss", func(shimPid int) error {
			v, err := residentBytes(shimPid)
			rss[f] = v
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("%s shim RSS: %w", f.name, err)
		}
	}
	metrics := func(f *flavor) []metric {
		var ms []metric
		whole := make([]time.Duration, len(steps[f]))
		for s, name := range shimSteps {
			var vs []time.Duration
			for i, took := range steps[f] {
				vs = append(vs, took[s])
				whole[i] += took[s]
			}
			ms = append(ms, duration(name+" p50", summarize(vs).p50))
		}
		ms = append(ms, duration("whole life p50", summarize(whole).p50))
		return append(ms, metric{name: "RSS serving a running container", unit: bytesSize, value: rss[f]})
	}
	return b.pair(metrics(b.ours), metrics(b.theirs))
}

// shimRig is what the shims need around them: a rootfs and a ttrpc
// events service to publish to, as a daemon has.
type shimRig struct {
	b      *bench
	dir    string
	rootfs string
	events string // the events socket, TTRPC_ADDRESS
	server *ttrpc.Server
	// grpcAddress is where a shim would find the daemon; nothing listens.
	grpcAddress string
	// bootstrap marks the shims that are started with BootstrapParams.
	bootstrap map[*flavor]bool
}

// discardEvents takes the shims' events and drops them.
type discardEvents struct{}

func (discardEvents) Forward(context.Context, *evttrpc.ForwardRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func newShimRig(b *bench, dir string) (*shimRig, error) {
	r := &shimRig{b: b, dir: dir, rootfs: filepath.Join(dir, "rootfs"), events: filepath.Join(dir, "ev.sock"),
		grpcAddress: filepath.Join(dir, "none.sock"), bootstrap: map[*flavor]bool{}}
	if err := testutil.BusyboxRootfs(r.rootfs); err != nil {
		return nil, fmt.Errorf("rootfs (apt-get install busybox-static): %w", err)
	}
	l, err := net.Listen("unix", r.events)
	if err != nil {
		return nil, err
	}
	if r.server, err = ttrpc.NewServer(); err != nil {
		l.Close()
		return nil, err
	}
	evttrpc.RegisterEventsService(r.server, discardEvents{})
	go r.server.Serve(context.Background(), l)
	return r, nil
}

func (r *shimRig) close() { r.server.Close() }

// cycle runs one container with f's shim, timing each of shimSteps. With
// hold set, the container sleeps instead and hold is called with the
// shim's pid while it runs.
func (r *shimRig) cycle(ctx context.Context, f *flavor, id string, hold func(shimPid int) error) (_ []time.Duration, retErr error) {
	bundle := filepath.Join("/run", "containerd-bench-shims", f.name, id)
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return nil, err
	}
	defer os.RemoveAll(bundle)
	args := []string{"true"}
	if hold != nil {
		args = []string{"sleep", "60"}
	}
	if err := r.writeSpec(bundle, id, args); err != nil {
		return nil, err
	}
	// The shim logs to the bundle's fifo; a daemon reads it, so do we.
	logPath := filepath.Join(bundle, "log")
	if err := unix.Mkfifo(logPath, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_RDWR|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	go io.Copy(io.Discard, logf)

	took := make([]time.Duration, 0, len(shimSteps))
	t := time.Now()
	lap := func() {
		now := time.Now()
		took = append(took, now.Sub(t))
		t = now
	}
	address, version, err := r.startShim(ctx, f, bundle, id)
	if err != nil {
		return nil, err
	}
	conn, err := dialShimAddress(address)
	if err != nil {
		return nil, err
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	task := shimTask{client: client, service: fmt.Sprintf("containerd.task.v%d.Task", version)}
	var cr taskapi.ConnectResponse
	if err := task.call(ctx, "Connect", &taskapi.ConnectRequest{Id: id}, &cr); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	shimPid := int(cr.GetShimPid())
	defer func() {
		// A failed cycle must not leave its shim (and container) behind.
		if retErr != nil && running(shimPid) {
			syscall.Kill(shimPid, syscall.SIGKILL)
		}
	}()
	lap()
	if err := task.call(ctx, "Create", &taskapi.CreateTaskRequest{Id: id, Bundle: bundle}, &taskapi.CreateTaskResponse{}); err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	lap()
	if err := task.call(ctx, "Start", &taskapi.StartRequest{Id: id}, &taskapi.StartResponse{}); err != nil {
		return nil, fmt.Errorf("start task: %w", err)
	}
	lap()
	if hold != nil {
		time.Sleep(200 * time.Millisecond) // let the shim settle
		if err := hold(shimPid); err != nil {
			return nil, err
		}
		if err := task.call(ctx, "Kill", &taskapi.KillRequest{Id: id, Signal: uint32(syscall.SIGKILL)}, &emptypb.Empty{}); err != nil {
			return nil, fmt.Errorf("kill: %w", err)
		}
	}
	var w taskapi.WaitResponse
	if err := task.call(ctx, "Wait", &taskapi.WaitRequest{Id: id}, &w); err != nil {
		return nil, fmt.Errorf("wait: %w", err)
	}
	if hold == nil && w.GetExitStatus() != 0 {
		return nil, fmt.Errorf("`true` exited with %d", w.GetExitStatus())
	}
	lap()
	if err := task.call(ctx, "Delete", &taskapi.DeleteRequest{Id: id}, &taskapi.DeleteResponse{}); err != nil {
		return nil, fmt.Errorf("delete: %w", err)
	}
	lap()
	// As daemons do: ask it to exit, then hang up.
	task.call(ctx, "Shutdown", &taskapi.ShutdownRequest{Id: id}, &emptypb.Empty{})
	client.Close()
	for running(shimPid) {
		if time.Since(t) > 5*time.Second {
			return nil, fmt.Errorf("shim %d still running 5s after Shutdown", shimPid)
		}
		time.Sleep(100 * time.Microsecond)
	}
	lap()
	return took, nil
}

// startShim runs f's shim's start command for the bundle and returns the
// address the shim serves and its task API version. Shims of containerd
// 2.3+ refuse the start of older ones, options on stdin and the address
// printed, and want BootstrapParams instead, answered with a
// BootstrapResult; which a shim wants is learnt at its first start.
func (r *shimRig) startShim(ctx context.Context, f *flavor, bundle, id string) (string, int32, error) {
	for {
		bootstrap := r.bootstrap[f]
		start := exec.CommandContext(ctx, f.shim, "-namespace", shimNamespace, "-address", r.grpcAddress,
			"-publish-binary", r.b.ours.path, "-id", id, "start")
		start.Dir = bundle
		start.Env = append(os.Environ(), "TTRPC_ADDRESS="+r.events, "GOMAXPROCS=2")
		if bootstrap {
			params, err := proto.Marshal(&bootstrapapi.BootstrapParams{
				InstanceId:             id,
				Namespace:              shimNamespace,
				ContainerdTtrpcAddress: r.events,
				ContainerdGrpcAddress:  r.grpcAddress,
				ContainerdBinary:       r.b.ours.path,
			})
			if err != nil {
				return "", 0, err
			}
			start.Stdin = bytes.NewReader(params)
		}
		var stderr bytes.Buffer
		start.Stderr = &stderr
		out, err := start.Output()
		if err != nil {
			if !bootstrap && strings.Contains(stderr.String(), "started through the deprecated API") {
				r.bootstrap[f] = true
				continue
			}
			return "", 0, fmt.Errorf("start: %v: %s", err, stderr.Bytes())
		}
		if !bootstrap {
			return strings.TrimSpace(string(out)), 2, nil
		}
		var res bootstrapapi.BootstrapResult
		if err := proto.Unmarshal(out, &res); err != nil {
			return "", 0, fmt.Errorf("start: bootstrap result %q: %w", out, err)
		}
		return res.GetAddress(), res.GetVersion(), nil
	}
}

// shimTask calls a shim's task service, whichever version it serves: 3,
// of containerd 2.x's shims, has the methods and messages of 2 under
// another name.
type shimTask struct {
	client  *ttrpc.Client
	service string
}

func (t shimTask) call(ctx context.Context, method string, req, resp any) error {
	return t.client.Call(ctx, t.service, method, req, resp)
}

func (r *shimRig) writeSpec(bundle, id string, args []string) error {
	spec := testutil.ContainerSpec(args...)
	spec.Root = &specs.Root{Path: r.rootfs, Readonly: true}
	spec.Linux.CgroupsPath = "/" + shimCgroupParent + "/" + id
	data, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600)
}

// dialShimAddress dials a shim's unix:// address, or the abstract socket
// that older shims print without a scheme.
func dialShimAddress(address string) (net.Conn, error) {
	if strings.HasPrefix(address, "{") {
		var p struct{ Address string }
		if err := json.Unmarshal([]byte(address), &p); err != nil {
			return nil, fmt.Errorf("shim address %q: %w", address, err)
		}
		address = p.Address
	}
	path, ok := strings.CutPrefix(address, "unix://")
	if !ok {
		path = "\x00" + address
	}
	return net.DialTimeout("unix", path, 5*time.Second)
}

// running reports whether pid is a process that has not exited: one that
// exists and is no zombie waiting for whichever ancestor reaps it.
func running(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')')
	return i > 0 && i+2 < len(data) && data[i+2] != 'Z'
}

// residentBytes is a process's VmRSS.
func residentBytes(pid int) (float64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// removeCgroupParent removes the parent the containers' cgroups were made
// in, in each hierarchy, once they are gone.
func removeCgroupParent(name string) {
	matches, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
	if m := "/sys/fs/cgroup/" + name; fileExists(m) {
		matches = append(matches, m)
	}
	for _, m := range matches {
		os.Remove(m)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
