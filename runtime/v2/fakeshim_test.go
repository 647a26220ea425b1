package v2

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/llitfkitfk/containerd/api/convert"
	bootstrap "github.com/llitfkitfk/containerd/api/runtime/bootstrap/v1"
	taskapi "github.com/llitfkitfk/containerd/api/runtime/task/v2"
	tasktypes "github.com/llitfkitfk/containerd/api/types/task"
	"github.com/llitfkitfk/containerd/errdefs"
)

// Fake shims: the test binary, linked under a shim's name, plays a shim of
// one generation, as far as the daemon's side of the protocol goes. It runs
// no containers; tasks are records that exit when killed.
//
//	containerd-shim-fakelegacy-v2: a 1.x shim. Options (an Any) on stdin;
//	  anything it cannot take for options fails as 1.6 does, after it wrote
//	  the bundle's address file. Prints a bare address; task API v2.
//	containerd-shim-fakejson-v2: the same, printing 2.0-2.2's JSON.
//	containerd-shim-fakeboot-v2: a 2.3+ shim. BootstrapParams on stdin,
//	  refused otherwise as 2.3+ shims do; answers a binary BootstrapResult
//	  of version 3 and serves containerd.task.v3.Task.
//
// Tasks whose config.json carries the same groupLabel share one shim
// process. Every start and delete command is logged, one line each, to
// calls.log beside the binary.
const (
	fakeLegacy = "containerd-shim-fakelegacy-v2"
	fakeJSON   = "containerd-shim-fakejson-v2"
	fakeBoot   = "containerd-shim-fakeboot-v2"

	groupLabel = "io.kubernetes.cri.sandbox-id"
	// fakeOptionsURL is the type of the options the fakes take.
	fakeOptionsURL = "types.containerd.io/fake/Options"
)

// runFakeShim plays a fake shim if the test binary was run as one.
func runFakeShim() (code int, ok bool) {
	name := filepath.Base(os.Args[0])
	switch name {
	case fakeLegacy, fakeJSON, fakeBoot:
	default:
		return 0, false
	}
	if err := fakeShimMain(name); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %s", name, err)
		return 1, true
	}
	return 0, true
}

func fakeShimMain(name string) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	ns := fs.String("namespace", "", "")
	fs.String("address", "", "")
	fs.String("publish-binary", "", "")
	id := fs.String("id", "", "")
	fs.String("bundle", "", "")
	fs.Bool("debug", false, "")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	dir := filepath.Dir(os.Args[0])
	switch fs.Arg(0) {
	case "start":
		return fakeStart(name, dir, *ns, *id)
	case "delete":
		fakeLog(dir, "delete", *id)
		data, _ := proto.Marshal(&taskapi.DeleteResponse{Pid: 0, ExitStatus: 137, ExitedAt: convert.TimestampToProto(time.Now())})
		_, err := os.Stdout.Write(data)
		return err
	case "serve":
		return fakeServe(name, fs.Arg(1))
	}
	return fmt.Errorf("unknown action %q", fs.Arg(0))
}

func fakeLog(dir string, words ...string) {
	f, err := os.OpenFile(filepath.Join(dir, "calls.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	f.WriteString(strings.Join(words, " ") + "\n")
}

func fakeStart(name, dir, ns, id string) error {
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	var opts *anypb.Any
	if name == fakeBoot {
		var params bootstrap.BootstrapParams
		if proto.Unmarshal(input, &params) != nil || len(input) == 0 ||
			params.GetInstanceId() != id || params.GetNamespace() != ns {
			fakeLog(dir, "refuse", id)
			return errors.New("bootstrap parameters do not match command-line arguments: shim was started through the deprecated API but was built against the new API")
		}
		if exts := params.GetExtensions(); len(exts) > 0 {
			opts = exts[0].GetValue()
		}
	} else if len(input) > 0 {
		opts = &anypb.Any{}
		if err := proto.Unmarshal(input, opts); err != nil {
			return err
		}
	}

	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if data, err := os.ReadFile(configFile); err == nil {
		json.Unmarshal(data, &spec)
	}
	group := id
	if g, ok := spec.Annotations[groupLabel]; ok {
		group = g
	}
	address := "unix://" + filepath.Join(dir, group+".sock")
	if name != fakeBoot {
		// As 1.6 does, before it looks at its options.
		os.WriteFile(addressFile, []byte(address), 0o644)
		if opts != nil && opts.GetTypeUrl() != fakeOptionsURL {
			return fmt.Errorf("type with url %s: not found", opts.GetTypeUrl())
		}
	}
	protocol := "legacy"
	if name == fakeBoot {
		protocol = "bootstrap"
	}
	fakeLog(dir, "start", protocol, id, "options="+opts.GetTypeUrl())

	if conn, err := dialShim(address); err == nil {
		conn.Close() // the group's shim runs; the task joins it
	} else {
		if err := fakeFork(address); err != nil {
			return err
		}
	}
	var out []byte
	switch name {
	case fakeLegacy:
		out = []byte(address)
	case fakeJSON:
		out, _ = json.Marshal(map[string]any{"version": 2, "address": address, "protocol": "ttrpc"})
	case fakeBoot:
		out, _ = proto.Marshal(&bootstrap.BootstrapResult{Version: 3, Address: address, Protocol: "ttrpc"})
	}
	_, err = os.Stdout.Write(out)
	return err
}

// fakeFork starts the serving shim on a socket at address, in a session of
// its own, as real shims do.
func fakeFork(address string) error {
	path := strings.TrimPrefix(address, "unix://")
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	// The serving shim owns the socket from here.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	defer l.Close()
	f, err := l.(*net.UnixListener).File()
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0], "serve", path)
	cmd.ExtraFiles = []*os.File{f}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd.Start()
}

func fakeServe(name, socket string) error {
	l, err := net.FileListener(os.NewFile(3, "socket"))
	if err != nil {
		return err
	}
	srv, err := ttrpc.NewServer()
	if err != nil {
		return err
	}
	version := int32(2)
	if name == fakeBoot {
		version = 3
	}
	service, _ := taskService(version)
	fs := &fakeService{tasks: map[string]*fakeTask{}, exit: make(chan struct{})}
	srv.RegisterService(service, fakeServiceDesc(fs))
	go srv.Serve(context.Background(), l)
	<-fs.exit
	os.Remove(socket)
	// Let the Shutdown answer go out before the process ends.
	time.Sleep(10 * time.Millisecond)
	return nil
}

type fakeTask struct {
	pid    uint32
	status tasktypes.Status
	exit   uint32
	exited chan struct{}
	exitAt time.Time
}

type fakeService struct {
	mu       sync.Mutex
	tasks    map[string]*fakeTask
	nextPid  uint32
	exit     chan struct{}
	exitOnce sync.Once
}

func (s *fakeService) get(id string) (*fakeTask, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok {
		return nil, errdefs.ToGRPCf(errdefs.ErrNotFound, "task %s", id)
	}
	return t, nil
}

func (s *fakeService) State(ctx context.Context, r *taskapi.StateRequest) (*taskapi.StateResponse, error) {
	t, err := s.get(r.GetId())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &taskapi.StateResponse{Id: r.GetId(), Pid: t.pid, Status: t.status, ExitStatus: t.exit}, nil
}

func (s *fakeService) Create(ctx context.Context, r *taskapi.CreateTaskRequest) (*taskapi.CreateTaskResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tasks[r.GetId()]; ok {
		return nil, errdefs.ToGRPCf(errdefs.ErrAlreadyExists, "task %s", r.GetId())
	}
	s.nextPid++
	t := &fakeTask{pid: 1_000_000 + s.nextPid, status: tasktypes.Status_CREATED, exited: make(chan struct{})}
	s.tasks[r.GetId()] = t
	return &taskapi.CreateTaskResponse{Pid: t.pid}, nil
}

func (s *fakeService) Start(ctx context.Context, r *taskapi.StartRequest) (*taskapi.StartResponse, error) {
	t, err := s.get(r.GetId())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t.status = tasktypes.Status_RUNNING
	return &taskapi.StartResponse{Pid: t.pid}, nil
}

func (s *fakeService) Delete(ctx context.Context, r *taskapi.DeleteRequest) (*taskapi.DeleteResponse, error) {
	t, err := s.get(r.GetId())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tasks, r.GetId())
	return &taskapi.DeleteResponse{Pid: t.pid, ExitStatus: t.exit, ExitedAt: convert.TimestampToProto(t.exitAt)}, nil
}

func (s *fakeService) Kill(ctx context.Context, r *taskapi.KillRequest) (*emptypb.Empty, error) {
	t, err := s.get(r.GetId())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.status != tasktypes.Status_STOPPED {
		t.status, t.exit, t.exitAt = tasktypes.Status_STOPPED, 128+r.GetSignal(), time.Now()
		close(t.exited)
	}
	return &emptypb.Empty{}, nil
}

func (s *fakeService) Wait(ctx context.Context, r *taskapi.WaitRequest) (*taskapi.WaitResponse, error) {
	t, err := s.get(r.GetId())
	if err != nil {
		return nil, err
	}
	select {
	case <-t.exited:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &taskapi.WaitResponse{ExitStatus: t.exit, ExitedAt: convert.TimestampToProto(t.exitAt)}, nil
}

func (s *fakeService) Connect(ctx context.Context, r *taskapi.ConnectRequest) (*taskapi.ConnectResponse, error) {
	var pid uint32
	if t, err := s.get(r.GetId()); err == nil {
		pid = t.pid
	}
	return &taskapi.ConnectResponse{ShimPid: uint32(os.Getpid()), TaskPid: pid}, nil
}

// Shutdown ends the shim once it serves no task, as containerd's do.
func (s *fakeService) Shutdown(ctx context.Context, r *taskapi.ShutdownRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tasks) == 0 {
		s.exitOnce.Do(func() { close(s.exit) })
	}
	return &emptypb.Empty{}, nil
}

func (s *fakeService) Pids(ctx context.Context, r *taskapi.PidsRequest) (*taskapi.PidsResponse, error) {
	t, err := s.get(r.GetId())
	if err != nil {
		return nil, err
	}
	return &taskapi.PidsResponse{Processes: []*tasktypes.ProcessInfo{{Pid: t.pid}}}, nil
}

func (s *fakeService) Stats(ctx context.Context, r *taskapi.StatsRequest) (*taskapi.StatsResponse, error) {
	if _, err := s.get(r.GetId()); err != nil {
		return nil, err
	}
	return &taskapi.StatsResponse{Stats: &anypb.Any{TypeUrl: "fake.Stats", Value: []byte(r.GetId())}}, nil
}

func (s *fakeService) unimplemented(id string) (*emptypb.Empty, error) {
	if _, err := s.get(id); err != nil {
		return nil, err
	}
	return nil, errdefs.ToGRPCf(errdefs.ErrNotImplemented, "fake shim")
}

// fakeServiceDesc serves s under whichever name the fake's generation
// uses: the generated RegisterTaskService knows only version 2's.
func fakeServiceDesc(s *fakeService) *ttrpc.ServiceDesc {
	return &ttrpc.ServiceDesc{Methods: map[string]ttrpc.Method{
		"State":    unary(s.State),
		"Create":   unary(s.Create),
		"Start":    unary(s.Start),
		"Delete":   unary(s.Delete),
		"Pids":     unary(s.Pids),
		"Kill":     unary(s.Kill),
		"Wait":     unary(s.Wait),
		"Stats":    unary(s.Stats),
		"Connect":  unary(s.Connect),
		"Shutdown": unary(s.Shutdown),
		"Pause": unary(func(ctx context.Context, r *taskapi.PauseRequest) (*emptypb.Empty, error) {
			return s.unimplemented(r.GetId())
		}),
		"Resume": unary(func(ctx context.Context, r *taskapi.ResumeRequest) (*emptypb.Empty, error) {
			return s.unimplemented(r.GetId())
		}),
		"Exec": unary(func(ctx context.Context, r *taskapi.ExecProcessRequest) (*emptypb.Empty, error) {
			return s.unimplemented(r.GetId())
		}),
		"ResizePty": unary(func(ctx context.Context, r *taskapi.ResizePtyRequest) (*emptypb.Empty, error) {
			return s.unimplemented(r.GetId())
		}),
		"CloseIO": unary(func(ctx context.Context, r *taskapi.CloseIORequest) (*emptypb.Empty, error) {
			return s.unimplemented(r.GetId())
		}),
		"Update": unary(func(ctx context.Context, r *taskapi.UpdateTaskRequest) (*emptypb.Empty, error) {
			return s.unimplemented(r.GetId())
		}),
		"Checkpoint": unary(func(ctx context.Context, r *taskapi.CheckpointTaskRequest) (*emptypb.Empty, error) {
			return s.unimplemented(r.GetId())
		}),
	}}
}

func unary[Req any, PReq interface {
	*Req
	proto.Message
}, Resp any](fn func(context.Context, PReq) (Resp, error)) ttrpc.Method {
	return func(ctx context.Context, unmarshal func(any) error) (any, error) {
		req := PReq(new(Req))
		if err := unmarshal(req); err != nil {
			return nil, err
		}
		return fn(ctx, req)
	}
}
