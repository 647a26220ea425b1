package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/console"
	"github.com/urfave/cli"
	"google.golang.org/protobuf/proto"

	"github.com/llitfkitfk/containerd/client"
)

func metricsOf(t *testing.T, m proto.Message, url string) *client.Metrics {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return &client.Metrics{ID: "c1", Timestamp: time.Unix(0, 0).UTC(), TypeURL: url, Data: b}
}

// The table has the rows containerd's ctr prints for each cgroup
// version, whether the type URL is bare (as the shims send it) or
// prefixed.
func TestPrintMetricsTable(t *testing.T) {
	for _, c := range []struct {
		m    *client.Metrics
		rows []string
	}{
		{metricsOf(t, &v1.Metrics{
			Memory: &v1.MemoryStat{Usage: &v1.MemoryEntry{Usage: 1000, Limit: 2000}, TotalCache: 7},
			Pids:   &v1.PidsStat{Current: 3, Limit: 10},
		}, "io.containerd.cgroups.v1.Metrics"), []string{
			"memory.usage_in_bytes    1000", "memory.limit_in_bytes    2000", "memory.stat.cache        7",
			"pids.current             3", "pids.limit               10",
		}},
		{metricsOf(t, &v2.Metrics{
			Memory: &v2.MemoryStat{Usage: 4096, UsageLimit: 8192},
			Pids:   &v2.PidsStat{Current: 2, Limit: 5},
			CPU:    &v2.CPUStat{UsageUsec: 11},
		}, "type.googleapis.com/io.containerd.cgroups.v2.Metrics"), []string{
			"pids.current          2", "pids.limit            5", "cpu.usage_usec        11",
			"memory.usage          4096", "memory.usage_limit    8192",
		}},
	} {
		var out bytes.Buffer
		if err := printMetrics(&out, c.m, "table"); err != nil {
			t.Fatal(err)
		}
		s := out.String()
		if !strings.HasPrefix(s, "ID    TIMESTAMP                        \nc1    1970-01-01 00:00:00 +0000 UTC    \n\nMETRIC") {
			t.Errorf("table head:\n%s", s)
		}
		for _, row := range c.rows {
			if !strings.Contains(s, "\n"+row) {
				t.Errorf("no row %q in:\n%s", row, s)
			}
		}
	}
}

func TestPrintMetricsJSONAndErrors(t *testing.T) {
	var out bytes.Buffer
	if err := printMetrics(&out, metricsOf(t, &v2.Metrics{Pids: &v2.PidsStat{Current: 2}}, "io.containerd.cgroups.v2.Metrics"), "json"); err != nil {
		t.Fatal(err)
	}
	var v struct{ Pids struct{ Current int } }
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Pids.Current != 2 {
		t.Fatalf("json %s: %v", out.String(), err)
	}
	if err := printMetrics(&out, &client.Metrics{TypeURL: "io.containerd.other.Stats"}, "table"); err == nil || !strings.Contains(err.Error(), "io.containerd.other.Stats") {
		t.Errorf("unknown type: %v", err)
	}
	if err := printMetrics(&out, &client.Metrics{TypeURL: "io.containerd.cgroups.v1.Metrics", Data: []byte{0xff}}, "table"); err == nil {
		t.Error("undecodable metrics printed")
	}
}

func TestExitError(t *testing.T) {
	if exitError(0) != nil {
		t.Fatal("exit code 0 is an error")
	}
	var ec cli.ExitCoder
	err := exitError(137)
	if !errors.As(err, &ec) || ec.ExitCode() != 137 || err.Error() != "" {
		t.Fatalf("exitError(137) = %#v; want a silent exit coder of 137", err)
	}
}

func TestCommandArgs(t *testing.T) {
	if got := commandArgs([]string{"--", "sh", "-c", "--"}); strings.Join(got, " ") != "sh -c --" {
		t.Errorf("commandArgs: %q", got)
	}
	if got := commandArgs([]string{"echo", "--"}); strings.Join(got, " ") != "echo --" {
		t.Errorf("commandArgs: %q", got)
	}
}

func TestIOOptionsConflicts(t *testing.T) {
	var con console.Console = fakeConsole{}
	for _, o := range []IOOptions{
		{Console: con, NullIO: true},
		{Console: con, LogURI: "file:///x"},
		{LogURI: "file:///x", FIFODir: "/tmp"},
	} {
		if _, _, err := o.creator(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if _, stdin, err := (IOOptions{LogURI: "file:///x"}).creator(); err != nil || stdin != nil {
		t.Errorf("log URI: %v, %v", stdin, err)
	}
	if _, stdin, err := (IOOptions{}).creator(); err != nil || stdin == nil {
		t.Errorf("stdio: %v, %v", stdin, err)
	}
}

type fakeConsole struct{ console.Console }

// ctr's stdin at its end closes the process's, even when the end came
// before the process existed.
func TestStdinCloser(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w.Close()
	s := &stdinCloser{stdin: r}
	if _, err := s.Read(make([]byte, 1)); err == nil {
		t.Fatal("read past the end")
	}
	var closed atomic.Int32
	called := make(chan struct{}, 2)
	s.setCloser(func() { closed.Add(1); called <- struct{}{} })
	select { // in the background, so the task's start does not wait on it
	case <-called:
	case <-time.After(10 * time.Second):
		t.Fatal("stdin at its end before the process: not closed once the closer is set")
	}
	s.Read(make([]byte, 1))
	if closed.Load() != 2 {
		t.Fatal("stdin at its end: closer not called")
	}
	var nilCloser *stdinCloser
	nilCloser.setCloser(func() { t.Fatal("called") })
}

// --tty without a terminal is an error, not a panic.
func TestRawConsoleWithoutTerminal(t *testing.T) {
	for _, f := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if _, err := console.ConsoleFromFile(f); err == nil {
			t.Skip("the test runs on a terminal")
		}
	}
	if con, err := RawConsole(); err == nil || !strings.Contains(err.Error(), "terminal") {
		t.Fatalf("RawConsole() = %v, %v; want an error", con, err)
	}
}
