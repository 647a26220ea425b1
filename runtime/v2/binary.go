package v2

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/api/convert"
	taskapi "github.com/llitfkitfk/containerd/api/runtime/task/v2"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/runtime"
	"github.com/llitfkitfk/containerd/sys"
)

const (
	// startTimeout bounds a shim's start command, which only forks the
	// shim proper and prints its address.
	startTimeout = time.Minute
	// cleanupTimeout bounds a shim's delete command.
	cleanupTimeout = 10 * time.Second
	// dialTimeout bounds connecting to a shim's socket.
	dialTimeout = 10 * time.Second
)

// shimBinary runs one task's shim binary in its bundle. The arguments and
// environment are the shim v2 protocol, as containerd 1.6 passes them.
type shimBinary struct {
	path         string // absolute path of the shim binary
	address      string // the daemon's gRPC address, which shims hash into their socket path
	ttrpcAddress string // where shims publish events
	schedCore    bool
	bundle       *bundle
}

// binaryName maps a runtime name to its shim binary, taking the last two
// dot-separated parts: io.containerd.runc.v2 is containerd-shim-runc-v2.
func binaryName(runtime string) string {
	parts := strings.Split(runtime, ".")
	if len(parts) < 2 || parts[0] == "" {
		return ""
	}
	return "containerd-shim-" + parts[len(parts)-2] + "-" + parts[len(parts)-1]
}

// lookupShim finds the shim binary for runtime: an absolute path is used as
// it is, a name is looked up on PATH and then beside the daemon's binary.
func lookupShim(runtime string) (string, error) {
	if runtime == "" {
		return "", fmt.Errorf("no runtime name: %w", errdefs.ErrInvalidArgument)
	}
	if filepath.IsAbs(runtime) {
		if _, err := os.Stat(runtime); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("runtime binary %s: %w", runtime, errdefs.ErrNotFound)
			}
			return "", fmt.Errorf("runtime binary: %w", err)
		}
		return runtime, nil
	}
	name := binaryName(runtime)
	if name == "" {
		return "", fmt.Errorf("invalid runtime name %q, want a name like io.containerd.runc.v2 or an absolute path: %w",
			runtime, errdefs.ErrInvalidArgument)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		self, serr := os.Executable()
		if serr != nil {
			return "", fmt.Errorf("runtime %q: %w", runtime, serr)
		}
		path = filepath.Join(filepath.Dir(self), name)
		if _, serr := os.Stat(path); serr != nil {
			return "", fmt.Errorf("runtime %q binary %s not installed: %w", runtime, name, errdefs.ErrNotFound)
		}
	}
	return filepath.Abs(path)
}

// command returns the shim invocation for args, run in the bundle.
func (b *shimBinary) command(ctx context.Context, args ...string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("daemon binary for shims to publish with: %w", err)
	}
	args = append([]string{
		"-namespace", b.bundle.namespace,
		"-address", b.address,
		"-publish-binary", self,
	}, args...)
	cmd := exec.CommandContext(ctx, b.path, args...)
	cmd.Dir = b.bundle.path
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2", "TTRPC_ADDRESS="+b.ttrpcAddress)
	if b.schedCore {
		cmd.Env = append(cmd.Env, "SCHED_CORE=1")
	}
	// Callers run it with sys.RunManaged, so that the daemon's reaper of
	// orphans leaves its exit status to them.
	//
	// A group of its own keeps the shim out of signals sent to the
	// daemon's group (a ^C in its terminal); nothing ties its life to the
	// daemon's, so shims outlive a daemon restart.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, nil
}

// start runs the shim's start command, which forks the long-lived shim and
// prints its address. opts, the runtime options, go on its stdin.
func (b *shimBinary) start(ctx context.Context, opts *anypb.Any) (string, error) {
	args := []string{"-id", b.bundle.id}
	if logrus.IsLevelEnabled(logrus.DebugLevel) {
		args = append(args, "-debug")
	}
	args = append(args, "start")

	// A caller that gives up must not kill the start command half way,
	// which could leave a shim running that nobody knows about.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startTimeout)
	defer cancel()
	cmd, err := b.command(ctx, args...)
	if err != nil {
		return "", err
	}
	if opts != nil {
		data, err := proto.Marshal(opts)
		if err != nil {
			return "", fmt.Errorf("marshal shim options: %w", err)
		}
		cmd.Stdin = bytes.NewReader(data)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The shim it forks must not hold our pipes; if a shim leaks them
	// anyway, do not wait for it to exit.
	cmd.WaitDelay = time.Second
	if err := sys.RunManaged(cmd); err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		msg := strings.TrimSpace(stderr.String() + stdout.String())
		return "", fmt.Errorf("start shim %s: %s: %w", b.path, msg, err)
	}
	return parseAddress(stdout.Bytes())
}

// parseAddress reads a shim's address as its start command prints it and
// as it is kept in the bundle: the bare address of 1.x shims, or the JSON
// bootstrap parameters of 2.x shims, of which only version 2 over ttrpc
// speaks the task API this daemon drives.
func parseAddress(out []byte) (string, error) {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return "", errors.New("shim gave no address")
	}
	var params struct {
		Version  int    `json:"version"`
		Address  string `json:"address"`
		Protocol string `json:"protocol"`
	}
	if json.Unmarshal([]byte(s), &params) != nil || params.Version < 2 {
		return s, nil
	}
	if params.Version > 2 {
		return "", fmt.Errorf("shim task API version %d unsupported, only 2: %w", params.Version, errdefs.ErrNotImplemented)
	}
	if !strings.EqualFold(params.Protocol, "ttrpc") {
		return "", fmt.Errorf("shim protocol %q unsupported, only ttrpc: %w", params.Protocol, errdefs.ErrNotImplemented)
	}
	if params.Address == "" {
		return "", errors.New("shim gave no address")
	}
	return params.Address, nil
}

// dialShim connects to a shim's address: unix://path is a socket file,
// anything else an abstract socket, as older shims used.
func dialShim(address string) (net.Conn, error) {
	path, ok := strings.CutPrefix(address, "unix://")
	if !ok {
		path = "\x00" + address
	}
	return net.DialTimeout("unix", path, dialTimeout)
}

// delete runs the shim's delete command, which cleans up after a shim that
// is gone (for runc: force-deletes the container and unmounts its rootfs)
// and reports the init process's pid; the exit status is the shim's word.
func (b *shimBinary) delete(ctx context.Context) (*runtime.Exit, error) {
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	cmd, err := b.command(ctx, "-id", b.bundle.id, "-bundle", b.bundle.path, "delete")
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	if err := sys.RunManaged(cmd); err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		return nil, fmt.Errorf("shim delete: %s: %w", strings.TrimSpace(stderr.String()), err)
	}
	logger := log.G(ctx).WithFields(logrus.Fields{"id": b.bundle.id, "namespace": b.bundle.namespace})
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if line != "" {
			logShimLine(logger, line)
		}
	}
	var resp taskapi.DeleteResponse
	if err := proto.Unmarshal(stdout.Bytes(), &resp); err != nil {
		return nil, fmt.Errorf("shim delete response: %w", err)
	}
	exit := &runtime.Exit{Pid: resp.GetPid(), Status: resp.GetExitStatus(), Timestamp: convert.TimestampFromProto(resp.GetExitedAt())}
	if exit.Timestamp.IsZero() {
		exit.Timestamp = time.Now()
	}
	return exit, nil
}

// writeAtomic writes data to path by way of a rename, so that a reader
// (or a daemon killed part way) never sees it half written.
func writeAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
