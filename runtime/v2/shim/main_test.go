package shim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsapi "github.com/llitfkitfk/containerd/api/events"
	taskapi "github.com/llitfkitfk/containerd/api/runtime/task/v2"
	"github.com/llitfkitfk/containerd/internal/privaterun"
	"github.com/llitfkitfk/containerd/log"
)

// asShimEnv, set, makes the test binary the shim binary, with fakeManager
// as its runtime: start forks os.Executable(), the test binary, which
// then serves.
const asShimEnv = "SHIM_FRAME_TEST_AS_SHIM"

// privateRun says that the tests run in a mount namespace of their own,
// with a tmpfs on /run: start without a socket_dir puts its socket in
// /run/containerd/s, which must not be the host's.
var privateRun bool

func TestMain(m *testing.M) {
	if os.Getenv(asShimEnv) != "" {
		Run(fakeManager{})
	}
	if os.Geteuid() == 0 {
		if _, err := privaterun.Isolate("SHIM_FRAME_TEST_PRIVATE_RUN", "shimtest"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		privateRun = true
	}
	os.Exit(m.Run())
}

// fakeManager is the runtime of the test shim. A bundle's files steer it:
// "group" names the task's group, "stop-error" fails delete.
type fakeManager struct{}

func (fakeManager) Name() string { return "io.containerd.fake.v2" }

func (fakeManager) Group(opts StartOpts) (string, error) {
	b, err := os.ReadFile(filepath.Join(opts.Bundle, "group"))
	if os.IsNotExist(err) {
		return opts.ID, nil
	}
	return strings.TrimSpace(string(b)), err
}

func (fakeManager) ShimCgroup(StartOpts) string { return os.Getenv("SHIM_FRAME_TEST_CGROUP") }

// fakeExitedAt is the exit time fakeManager's Stop reports.
var fakeExitedAt = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func (fakeManager) Stop(ctx context.Context, opts StartOpts) (*taskapi.DeleteResponse, error) {
	if _, err := os.Stat(filepath.Join(opts.Bundle, "stop-error")); err == nil {
		return nil, fmt.Errorf("bundle %s says no", opts.Bundle)
	}
	log.G(ctx).Warn("fake runtime: nothing to clean up")
	return &taskapi.DeleteResponse{Pid: 42, ExitStatus: 137, ExitedAt: timestamppb.New(fakeExitedAt)}, nil
}

func (fakeManager) NewService(ctx context.Context, opts ServiceOpts) (taskapi.TaskService, error) {
	return &fakeService{opts: opts}, nil
}

// fakeService answers what the tests call: State, Connect, Create (which
// publishes /tasks/create) and Shutdown. The rest is never called.
type fakeService struct {
	taskapi.TaskService
	opts ServiceOpts
}

func (s *fakeService) State(ctx context.Context, req *taskapi.StateRequest) (*taskapi.StateResponse, error) {
	wd, _ := os.Getwd()
	return &taskapi.StateResponse{Id: req.Id, Bundle: wd, Pid: uint32(os.Getpid()), Stdout: s.opts.ID + "/" + s.opts.Namespace}, nil
}

func (s *fakeService) Connect(ctx context.Context, req *taskapi.ConnectRequest) (*taskapi.ConnectResponse, error) {
	return &taskapi.ConnectResponse{ShimPid: uint32(os.Getpid())}, nil
}

func (s *fakeService) Create(ctx context.Context, req *taskapi.CreateTaskRequest) (*taskapi.CreateTaskResponse, error) {
	// A background context, as an exit publisher would use: the
	// publisher's own namespace applies.
	if err := s.opts.Publisher.Publish(context.Background(), "/tasks/create",
		&eventsapi.TaskCreate{ContainerId: req.Id, Bundle: req.Bundle}); err != nil {
		return nil, err
	}
	return &taskapi.CreateTaskResponse{Pid: 1234}, nil
}

func (s *fakeService) Shutdown(ctx context.Context, req *taskapi.ShutdownRequest) (*emptypb.Empty, error) {
	s.opts.Shutdown()
	return &emptypb.Empty{}, nil
}
