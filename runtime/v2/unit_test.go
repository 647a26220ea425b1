package v2

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

	bootstrap "github.com/llitfkitfk/containerd/api/runtime/bootstrap/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/plugin"
)

func TestBinaryName(t *testing.T) {
	for runtime, want := range map[string]string{
		"io.containerd.runc.v2":  "containerd-shim-runc-v2",
		"io.containerd.runsc.v1": "containerd-shim-runsc-v1",
		"runc.v2":                "containerd-shim-runc-v2",
		"runc":                   "",
		".runc.v2":               "",
		"":                       "",
	} {
		if got := binaryName(runtime); got != want {
			t.Errorf("binaryName(%q) = %q, want %q", runtime, got, want)
		}
	}
}

func TestParseEndpoint(t *testing.T) {
	result := func(r *bootstrap.BootstrapResult) string {
		data, err := proto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	v2 := func(addr string) *endpoint { return &endpoint{Version: 2, Address: addr, Protocol: "ttrpc"} }
	for _, tc := range []struct {
		in   string
		want *endpoint
		is   func(error) bool
	}{
		// containerd 1.x shims: a bare address.
		{"unix:///run/containerd/s/abc", v2("unix:///run/containerd/s/abc"), nil},
		{"unix:///run/containerd/s/abc\n", v2("unix:///run/containerd/s/abc"), nil},
		{"@abstract", v2("@abstract"), nil},
		// containerd 2.0-2.2 shims, and bootstrap.json.
		{`{"version":2,"address":"unix:///s/x","protocol":"ttrpc"}`, v2("unix:///s/x"), nil},
		{`{"version":3,"address":"unix:///s/x","protocol":"ttrpc"}`, &endpoint{3, "unix:///s/x", "ttrpc"}, nil},
		{`{"address":"unix:///s/x","protocol":"ttrpc"}`, v2(`{"address":"unix:///s/x","protocol":"ttrpc"}`), nil},
		{`{"version":4,"address":"unix:///s/x","protocol":"ttrpc"}`, nil, errdefs.IsNotImplemented},
		{`{"version":2,"address":"unix:///s/x","protocol":"grpc"}`, nil, errdefs.IsNotImplemented},
		// containerd 2.3+ shims: a binary BootstrapResult.
		{result(&bootstrap.BootstrapResult{Version: 3, Address: "unix:///run/containerd/s/abc", Protocol: "ttrpc"}),
			&endpoint{3, "unix:///run/containerd/s/abc", "ttrpc"}, nil},
		{result(&bootstrap.BootstrapResult{Version: 2, Address: "unix:///s/y", Protocol: "TTRPC", Metadata: map[string]string{"k": "v"}}),
			v2("unix:///s/y"), nil},
		{result(&bootstrap.BootstrapResult{Version: 3, Address: "vsock://3:1024", Protocol: "grpc"}), nil, errdefs.IsNotImplemented},
		{result(&bootstrap.BootstrapResult{Version: 3, Protocol: "ttrpc"}), nil, func(err error) bool { return err != nil }},
		{"\x08\x03\x12\xff", nil, func(err error) bool { return err != nil }}, // truncated
		{"", nil, func(err error) bool { return err != nil }},
	} {
		got, err := parseEndpoint([]byte(tc.in))
		if tc.is != nil {
			if !tc.is(err) {
				t.Errorf("parseEndpoint(%q) = %+v, %v", tc.in, got, err)
			}
			continue
		}
		if err != nil || *got != *tc.want {
			t.Errorf("parseEndpoint(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// TestEndpointFileRoundTrip: what the daemon keeps in bootstrap.json is
// what containerd 2.x writes there and reads back, and the address file
// of a bundle from an older daemon still serves.
func TestEndpointFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	b := &bundle{id: "t", namespace: "ns", path: dir}
	if _, err := readEndpoint(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty bundle: %v, want not exist", err)
	}
	if err := os.WriteFile(b.file(addressFile), []byte("unix:///old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ep, err := readEndpoint(dir); err != nil || *ep != (endpoint{2, "unix:///old", "ttrpc"}) {
		t.Fatalf("address file only: %+v, %v", ep, err)
	}
	os.Remove(b.file(addressFile))
	want := endpoint{3, "unix:///new", "ttrpc"}
	if err := writeEndpoint(b, &want); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(b.file(bootstrapFile))
	if err != nil {
		t.Fatal(err)
	}
	// containerd 2.x reads it with encoding/json into BootstrapResult.
	var res bootstrap.BootstrapResult
	if err := json.Unmarshal(data, &res); err != nil || res.GetVersion() != 3 || res.GetAddress() != "unix:///new" || res.GetProtocol() != "ttrpc" {
		t.Errorf("bootstrap.json %s read as %v, %v", data, &res, err)
	}
	if addr, err := os.ReadFile(b.file(addressFile)); err != nil || string(addr) != "unix:///new" {
		t.Errorf("address file = %q, %v", addr, err)
	}
	if ep, err := readEndpoint(dir); err != nil || *ep != want {
		t.Errorf("read back %+v, %v; want %+v", ep, err, want)
	}
}

func TestTaskService(t *testing.T) {
	for v, want := range map[int32]string{2: "containerd.task.v2.Task", 3: "containerd.task.v3.Task"} {
		if got, err := taskService(v); err != nil || got != want {
			t.Errorf("taskService(%d) = %q, %v", v, got, err)
		}
	}
	if _, err := taskService(4); !errdefs.IsNotImplemented(err) {
		t.Errorf("taskService(4): %v", err)
	}
}

func TestParsePlatforms(t *testing.T) {
	// Normalized as containerd's clients compare them: v8 is arm64's
	// only variant, so it is left out, and aarch64 is arm64.
	ps, err := parsePlatforms([]string{"linux/amd64", "Linux/ARM64/v8", "linux/aarch64", "linux/arm/v7"})
	want := []ocispec.Platform{
		{OS: "linux", Architecture: "amd64"},
		{OS: "linux", Architecture: "arm64"},
		{OS: "linux", Architecture: "arm64"},
		{OS: "linux", Architecture: "arm", Variant: "v7"},
	}
	if err != nil || !reflect.DeepEqual(ps, want) {
		t.Errorf("parsePlatforms = %+v, %v; want %+v", ps, err, want)
	}
	for _, bad := range []string{"/amd64", "linux/", "a/b/c/d", "linux/amd64/v2/x"} {
		if _, err := parsePlatforms([]string{bad}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("parsePlatforms(%q): %v", bad, err)
		}
	}
}

// The runtime's default platform is the one the snapshotters and the
// differ report, variant and all, so that a client matching an image's
// platform against either finds the same answer.
func TestDefaultPlatformIsTheSnapshottersOne(t *testing.T) {
	var def []string
	for _, r := range plugin.Registrations() {
		if r.URI() == "io.containerd.runtime.v2.task" {
			def = r.Config.(*Config).Platforms
		}
	}
	ps, err := parsePlatforms(def)
	if err != nil || len(ps) != 1 {
		t.Fatalf("default platforms %q: %v, %v", def, ps, err)
	}
	if want := platforms.Normalize(platforms.DefaultSpec()); !reflect.DeepEqual(ps[0], want) {
		t.Errorf("runtime platform %+v, snapshotters' %+v", ps[0], want)
	}
}

func TestLogShimLine(t *testing.T) {
	var buf bytes.Buffer
	logger := logrus.New()
	logger.SetOutput(&buf)
	logger.SetLevel(logrus.DebugLevel)
	logger.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
	entry := logrus.NewEntry(logger).WithField("id", "t1")

	logShimLine(entry, `time="2024-01-01T00:00:00Z" level=warning msg="shim says" runtime=io.containerd.runc.v2`)
	logShimLine(entry, `time="2024-01-01T00:00:00Z" level=fatal msg="dying"`)
	logShimLine(entry, `goroutine 1 [running]:`)
	logShimLine(entry, `time="2024-01-01T00:00:00Z" level=debug msg="a \"quoted\" word" path="/a b" pid=7`)
	logShimLine(entry, `level=info msg="unterminated`)
	got := buf.String()
	for _, want := range []string{
		`level=warning msg="shim says" id=t1 runtime=io.containerd.runc.v2`,
		`level=error msg=dying id=t1`,
		`level=info msg="goroutine 1 [running]:" id=t1`,
		`level=debug msg="a \"quoted\" word" id=t1 path="/a b" pid=7`,
		`level=info msg="level=info msg=\"unterminated" id=t1`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %s:\n%s", want, got)
		}
	}
}

func TestIsChild(t *testing.T) {
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	if !isChild(uint32(cmd.Process.Pid)) {
		t.Error("child not recognised")
	}
	if isChild(1) {
		t.Error("init taken for a child")
	}
}

// Teardowns that come after Close has begun run before Delete returns:
// none may start in the background while Close waits for the others.
func TestLaterAfterClose(t *testing.T) {
	m := &TaskManager{cancel: func() {}, tasks: newTaskList()}
	m.Close()
	var ran atomic.Bool
	m.later(func() { ran.Store(true) })
	if !ran.Load() {
		t.Error("teardown after Close left to the background")
	}
}
