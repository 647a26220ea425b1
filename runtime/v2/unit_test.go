package v2

import (
	"bytes"
	"os/exec"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"

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

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		is       func(error) bool
	}{
		{"unix:///run/containerd/s/abc", "unix:///run/containerd/s/abc", nil},
		{"unix:///run/containerd/s/abc\n", "unix:///run/containerd/s/abc", nil},
		{"@abstract", "@abstract", nil},
		{`{"version":2,"address":"unix:///s/x","protocol":"ttrpc"}`, "unix:///s/x", nil},
		{`{"address":"unix:///s/x","protocol":"ttrpc"}`, `{"address":"unix:///s/x","protocol":"ttrpc"}`, nil},
		{`{"version":3,"address":"unix:///s/x","protocol":"ttrpc"}`, "", errdefs.IsNotImplemented},
		{`{"version":2,"address":"unix:///s/x","protocol":"grpc"}`, "", errdefs.IsNotImplemented},
		{"", "", func(err error) bool { return err != nil }},
	} {
		got, err := parseAddress([]byte(tc.in))
		if tc.is != nil {
			if !tc.is(err) {
				t.Errorf("parseAddress(%q): %v", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseAddress(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
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
