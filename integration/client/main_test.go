package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/llitfkitfk/containerd/internal/privaterun"
	"github.com/llitfkitfk/containerd/internal/testutil"
)

// privateRunEnv marks the test binary run again in a private mount
// namespace; see privaterun.Isolate.
const privateRunEnv = "CONTAINERD_CLIENT_SUITE_PRIVATE_RUN"

var (
	// address is the socket of the daemon every test talks to.
	address string
	// daemonBinary is the daemon under test: $CONTAINERD_BINARY, as
	// `make test` sets it, or one built from this checkout.
	daemonBinary string
	// runNamespace is the containerd namespace the tests run containers
	// in. runc puts them in cgroups /<namespace>/<id> of the host's
	// hierarchy, so it is the run's own (privaterun.Isolate), and what a
	// failed run leaves there is swept.
	runNamespace string
)

// snapshotters are the daemon's snapshotters the suites run on.
var snapshotters = []string{"overlayfs", "naive"}

// TestMain runs the tests in a private mount namespace with a tmpfs on
// /run (the shim, runc and the client's fifos keep their files in
// /run/containerd whatever the daemon's paths), against one daemon
// started on temporary root, state and socket paths.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "the client suite mounts snapshots and runs containers: run it as root (`make test` does)")
		return 1
	}
	ns, err := privaterun.Isolate(privateRunEnv, "client-suite")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	runNamespace = ns
	defer privaterun.RemoveCgroupParents(runNamespace)

	if _, err := exec.LookPath("runc"); err != nil {
		fmt.Fprintln(os.Stderr, "runc is not installed (`make test` installs it through script/test-deps.sh)")
		return 1
	}
	dir, err := os.MkdirTemp("", "ctrd-client")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)

	daemonBinary = os.Getenv("CONTAINERD_BINARY")
	if daemonBinary == "" {
		daemonBinary = filepath.Join(dir, "containerd")
		// Built in the product's own module, with its own dependencies'
		// versions, not this module's.
		build := exec.Command("go", "build", "-o", daemonBinary, "./cmd/containerd")
		build.Dir = "../.."
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build the daemon:", err)
			return 1
		}
	}

	// Containers run through the shim under test: ours, unless
	// $CONTAINERD_SHIM names another.
	shim, err := testutil.ShimUnderTest(daemonBinary, "../..")
	if err == nil {
		err = testutil.PutShimFirst(dir, shim)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "shim under test:", err)
		return 1
	}
	fmt.Fprintln(os.Stderr, "client suite: containers run through", shim)

	d, err := startDaemon(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	address = d.Address
	code := m.Run()
	if err := d.stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if code != 0 {
		d.dumpLog()
	}
	return code
}

// daemon is the running daemon under test.
type daemon struct {
	testutil.DaemonPaths
	logPath string
	*testutil.Process
}

// startDaemon starts the daemon with a config that keeps all its paths
// under dir, and waits until it serves.
func startDaemon(dir string) (*daemon, error) {
	d := &daemon{DaemonPaths: testutil.NewDaemonPaths(dir), logPath: filepath.Join(dir, "daemon.log")}
	if err := os.WriteFile(d.Config, []byte(d.ConfigText("")), 0o644); err != nil {
		return nil, err
	}
	if err := d.CheckEffective(daemonBinary); err != nil {
		return nil, err
	}

	logFile, err := os.Create(d.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(daemonBinary, "--config", d.Config)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if d.Process, err = testutil.StartProcess(cmd); err != nil {
		return nil, err
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		if d.serving() {
			return d, nil
		}
		select {
		case <-d.Exited:
			d.dumpLog()
			return nil, fmt.Errorf("the daemon exited during start-up: %v", d.Cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.stop()
			d.dumpLog()
			return nil, errors.New("the daemon did not serve within 20s")
		}
	}
}

// serving asks the daemon's health check through the Go client.
func (d *daemon) serving() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := containerd.New(d.Address, containerd.WithTimeout(time.Second))
	if err != nil {
		return false
	}
	defer c.Close()
	ok, err := c.IsServing(ctx)
	return err == nil && ok
}

// stop stops the daemon with SIGTERM and fails unless it exits 0 within
// 15 seconds, as it does when it stops cleanly.
func (d *daemon) stop() error {
	select {
	case <-d.Exited:
		return fmt.Errorf("the daemon had exited before the tests ended: %v", d.Cmd.ProcessState)
	default:
	}
	if !d.Stop(15 * time.Second) {
		return errors.New("the daemon did not stop within 15s of SIGTERM")
	}
	if code := d.Cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("the daemon stopped with status %d", code)
	}
	return nil
}

// dumpLog prints the end of the daemon's log.
func (d *daemon) dumpLog() {
	b, _ := os.ReadFile(d.logPath)
	const keep = 64 << 10
	if len(b) > keep {
		b = append([]byte("...\n"), b[len(b)-keep:]...)
	}
	fmt.Fprintf(os.Stderr, "--- daemon log (%s):\n%s\n", daemonBinary, b)
}

// newClient connects a Go client to the daemon, closed when the test ends.
func newClient(t testing.TB, opts ...containerd.Opt) *containerd.Client {
	t.Helper()
	c, err := containerd.New(address, opts...)
	if err != nil {
		t.Fatalf("connect to the daemon: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newSuiteClient connects a Go client to the daemon for containerd's
// suites, which close it through the cleanup they are given.
func newSuiteClient() (*containerd.Client, error) {
	c, err := containerd.New(address)
	if err != nil {
		return nil, fmt.Errorf("connect to the daemon: %w", err)
	}
	return c, nil
}
