package client

import (
	"context"
	"encoding/json"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"

	"github.com/llitfkitfk/containerd/api/types/runc/options"
	tasktypes "github.com/llitfkitfk/containerd/api/types/task"
	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/errdefs"
)

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{
		"9": syscall.SIGKILL, "SIGKILL": syscall.SIGKILL, "KILL": syscall.SIGKILL, "kill": syscall.SIGKILL,
		"sigterm": syscall.SIGTERM, "SIGUSR1": syscall.SIGUSR1, "15": syscall.SIGTERM, "HUP": syscall.SIGHUP,
	} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "65", "SIGNOPE", "SIG", "9x"} {
		if got, err := ParseSignal(in); err == nil {
			t.Errorf("ParseSignal(%q) = %v, want an error", in, got)
		}
	}
}

// Records carry specs and options under containerd's type URLs, so that
// containerd's clients and daemons read what ours write.
func TestAnyOfTypeURLs(t *testing.T) {
	s := &specs.Spec{Version: "1.2.0", Process: &specs.Process{Args: []string{"sh"}}}
	a, err := anyOf(s)
	if err != nil || a.GetTypeUrl() != "types.containerd.io/opencontainers/runtime-spec/1/Spec" {
		t.Fatalf("spec Any: %v, %v", a, err)
	}
	var back specs.Spec
	if err := json.Unmarshal(a.GetValue(), &back); err != nil || back.Process.Args[0] != "sh" {
		t.Fatalf("spec JSON %s: %v", a.GetValue(), err)
	}
	if a, _ := anyOf(s.Process); a.GetTypeUrl() != "types.containerd.io/opencontainers/runtime-spec/1/Process" {
		t.Errorf("process type URL %q", a.GetTypeUrl())
	}
	if a, _ := anyOf(&specs.LinuxResources{}); a.GetTypeUrl() != "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources" {
		t.Errorf("resources type URL %q", a.GetTypeUrl())
	}
	a, err = anyOf(&options.Options{BinaryName: "crun"})
	if err != nil || a.GetTypeUrl() != "containerd.runc.v1.Options" {
		t.Fatalf("runc options Any: %v, %v", a, err)
	}
	if _, err := anyOf(struct{}{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("anyOf of a plain struct: %v, want invalid argument", err)
	}
}

func TestWithRuntime(t *testing.T) {
	var c containers.Container
	if err := WithRuntime("io.containerd.runc.v2", &options.Options{BinaryName: "crun", SystemdCgroup: true})(context.Background(), nil, &c); err != nil {
		t.Fatal(err)
	}
	var o options.Options
	if c.Runtime.Name != "io.containerd.runc.v2" || proto.Unmarshal(c.Runtime.Options.GetValue(), &o) != nil || o.BinaryName != "crun" || !o.SystemdCgroup {
		t.Fatalf("runtime %+v", c.Runtime)
	}
	c = containers.Container{}
	if err := WithRuntime("io.containerd.other", nil)(context.Background(), nil, &c); err != nil || c.Runtime.Options != nil {
		t.Fatalf("runtime without options: %+v, %v", c.Runtime, err)
	}
}

// A task option that changes one runc setting keeps the container's
// others: the daemon takes task options in place of the container's.
func TestTaskRuncOptionsKeepContainers(t *testing.T) {
	var c containers.Container
	if err := WithRuntime("io.containerd.runc.v2", &options.Options{BinaryName: "crun", Root: "/r"})(context.Background(), nil, &c); err != nil {
		t.Fatal(err)
	}
	info := TaskInfo{Runtime: c.Runtime.Name, runtimeOptions: c.Runtime.Options}
	if err := WithNoPivotRoot(context.Background(), nil, &info); err != nil {
		t.Fatal(err)
	}
	if err := WithShimCgroup("/shim")(context.Background(), nil, &info); err != nil {
		t.Fatal(err)
	}
	o := info.Options.(*options.Options)
	if !o.NoPivotRoot || o.ShimCgroup != "/shim" || o.BinaryName != "crun" || o.Root != "/r" {
		t.Fatalf("task options %+v", o)
	}
}

func TestContainerLabelOptions(t *testing.T) {
	var c containers.Container
	ctx := context.Background()
	for _, o := range []NewContainerOpts{
		WithContainerLabels(map[string]string{"a": "1"}),
		WithAdditionalContainerLabels(map[string]string{"b": "2", "a": "3"}),
		WithImageName("img"),
	} {
		if err := o(ctx, nil, &c); err != nil {
			t.Fatal(err)
		}
	}
	if c.Labels["a"] != "3" || c.Labels["b"] != "2" || len(c.Labels) != 2 || c.Image != "img" {
		t.Fatalf("container %+v", c)
	}
	if err := WithContainerExtension("ext", &options.Options{Root: "/x"})(ctx, nil, &c); err != nil || c.Extensions["ext"].GetTypeUrl() != "containerd.runc.v1.Options" {
		t.Fatalf("extension: %v, %v", c.Extensions, err)
	}
	if err := WithContainerExtension("", &options.Options{})(ctx, nil, &c); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("extension without a name: %v", err)
	}
}

func TestStatusOf(t *testing.T) {
	for s, want := range map[tasktypes.Status]ProcessStatus{
		tasktypes.Status_CREATED: Created, tasktypes.Status_RUNNING: Running, tasktypes.Status_STOPPED: Stopped,
		tasktypes.Status_PAUSED: Paused, tasktypes.Status_PAUSING: Pausing, tasktypes.Status_UNKNOWN: Unknown, 42: Unknown,
	} {
		if got := statusOf(s); got != want {
			t.Errorf("statusOf(%v) = %q, want %q", s, got, want)
		}
	}
}
