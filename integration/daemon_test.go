//go:build integration

// Package integration drives the built daemon with the distribution's own
// clients (ctr), on temporary paths only.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llitfkitfk/containerd/internal/privaterun"
	"github.com/llitfkitfk/containerd/internal/testutil"
)

// daemonBinary is the daemon under test: $CONTAINERD_BINARY, as `make test`
// sets it, or one built from this checkout.
var daemonBinary string

// ctrBinary is the ctr the tests drive the daemon with: $CTR, or ours,
// built beside the daemon (`make test` runs the ctr tests again with the
// distribution's ctr 1.6, CTR=/usr/bin/ctr, as a compatibility pass).
var ctrBinary string

// testShim is the containerd-shim-runc-v2 every container runs through:
// ours, built beside the daemon, unless $CONTAINERD_SHIM names another.
var testShim string

func TestMain(m *testing.M) {
	// As root the tests run with a /run of their own; see isolate.
	isolate()
	daemonBinary = os.Getenv("CONTAINERD_BINARY")
	var cleanup func()
	if daemonBinary == "" {
		dir, err := os.MkdirTemp("", "containerd-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cleanup = func() { os.RemoveAll(dir) }
		daemonBinary = filepath.Join(dir, "containerd")
		build := exec.Command("go", "build", "-o", daemonBinary, "../cmd/containerd")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build daemon:", err)
			os.Exit(1)
		}
	}
	// Containers run through the shim under test (ours unless
	// $CONTAINERD_SHIM names another), first on every daemon's PATH.
	shimDir, err := os.MkdirTemp("", "containerd-shim")
	if err == nil {
		if testShim, err = testutil.ShimUnderTest(daemonBinary, ".."); err == nil {
			err = testutil.PutShimFirst(shimDir, testShim)
			fmt.Fprintln(os.Stderr, "integration: containers run through", testShim)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "shim under test:", err)
		os.Exit(1)
	}
	if ctrBinary = os.Getenv("CTR"); ctrBinary == "" {
		ctrBinary = filepath.Join(filepath.Dir(daemonBinary), "ctr")
		if cleanup != nil { // the daemon was built here: build ctr too
			build := exec.Command("go", "build", "-o", ctrBinary, "../cmd/ctr")
			build.Stdout, build.Stderr = os.Stderr, os.Stderr
			if err := build.Run(); err != nil {
				fmt.Fprintln(os.Stderr, "build ctr:", err)
				os.Exit(1)
			}
		}
	}
	if _, err := exec.LookPath(ctrBinary); err != nil {
		fmt.Fprintln(os.Stderr, "ctr under test:", err, "(`make build` builds ours; $CTR names another)")
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "integration: ctr is", ctrBinary)
	code := m.Run()
	os.RemoveAll(shimDir)
	if cleanup != nil {
		cleanup()
	}
	if privateRun {
		privaterun.RemoveCgroupParents(runNamespace)
	}
	os.Exit(code)
}

// daemon is one instance of the daemon under test, on paths of its own;
// Process is set once it is started.
type daemon struct {
	t   *testing.T
	dir string
	testutil.DaemonPaths
	log *bytes.Buffer
	*testutil.Process
}

// newDaemon writes a config that keeps every path under a temporary
// directory, with extra TOML appended, and returns the daemon unstarted.
func newDaemon(t *testing.T, extra string) *daemon {
	t.Helper()
	// Unix socket paths are limited to 108 bytes; t.TempDir() can be long.
	dir, err := os.MkdirTemp("", "ctrd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &daemon{t: t, dir: dir, DaemonPaths: testutil.NewDaemonPaths(dir), log: &bytes.Buffer{}}
	d.writeConfig(extra)
	return d
}

// writeConfig writes d's config file from its paths (see
// DaemonPaths.ConfigText), and fails the test unless the daemon's
// effective config keeps them.
func (d *daemon) writeConfig(extra string) {
	d.t.Helper()
	if err := os.WriteFile(d.Config, []byte(d.ConfigText(extra)), 0o644); err != nil {
		d.t.Fatal(err)
	}
	if err := d.CheckEffective(daemonBinary); err != nil {
		d.t.Fatal(err)
	}
}

// start runs the daemon and waits until it answers `ctr version`.
func (d *daemon) start(env ...string) {
	d.t.Helper()
	d.startNoWait(env...)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := d.ctrErr("version"); err == nil {
			break
		}
		select {
		case <-d.Exited:
			d.t.Fatalf("daemon exited during start-up: %v\n%s", d.WaitErr, d.log)
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("daemon not ready after 20s\n%s", d.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Cleanup(d.kill)
}

func (d *daemon) startNoWait(env ...string) {
	d.t.Helper()
	cmd := exec.Command(daemonBinary, "--config", d.Config)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = d.log, d.log
	p, err := testutil.StartProcess(cmd)
	if err != nil {
		d.t.Fatal(err)
	}
	d.Process = p
}

// wait waits for the daemon to exit and returns its exit status.
func (d *daemon) wait(timeout time.Duration) int {
	d.t.Helper()
	select {
	case <-d.Exited:
	case <-time.After(timeout):
		d.t.Fatalf("daemon did not exit within %v\n%s", timeout, d.log)
	}
	return d.Cmd.ProcessState.ExitCode()
}

func (d *daemon) signal(sig syscall.Signal) {
	if err := d.Cmd.Process.Signal(sig); err != nil {
		d.t.Fatal(err)
	}
}

// kill stops the daemon, killing it if it does not stop within 15s.
func (d *daemon) kill() { d.Stop(15 * time.Second) }

// ctr runs the distribution's ctr against the daemon and fails the test
// on error.
func (d *daemon) ctr(args ...string) string {
	d.t.Helper()
	out, err := d.ctrErr(args...)
	if err != nil {
		d.t.Fatalf("ctr %s: %v\n%s\ndaemon log:\n%s", strings.Join(args, " "), err, out, d.log)
	}
	return out
}

func (d *daemon) ctrErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctrBinary, append([]string{"-a", d.Address, "--timeout", "20s"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// dialUnix reports whether something answers on a unix socket.
func dialUnix(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// awaitEvent runs `ctr events` and calls trigger every 200ms until a line
// that match accepts appears. Retrying covers the moment before ctr's
// subscription is in place, which ctr does not announce.
func (d *daemon) awaitEvent(match func(line string) bool, trigger func()) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	events := exec.CommandContext(ctx, ctrBinary, "-a", d.Address, "events")
	stdout, err := events.StdoutPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	if err := events.Start(); err != nil {
		d.t.Fatal(err)
	}
	defer events.Wait()
	defer cancel()

	lines := make(chan string)
	go func() {
		defer close(lines)
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			select {
			case lines <- s.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				d.t.Fatalf("ctr events ended: %v", ctx.Err())
			}
			if match(line) {
				return
			}
		case <-tick.C:
			trigger()
		case <-ctx.Done():
			d.t.Fatalf("no matching event seen\n%s", d.log)
		}
	}
}

// restart starts a new daemon on d's paths and config, as after a reboot
// of the service, and waits until it serves.
func (d *daemon) restart() *daemon {
	d.t.Helper()
	d2 := &daemon{t: d.t, dir: d.dir, DaemonPaths: d.DaemonPaths, log: d.log}
	d2.start()
	return d2
}
