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
	"unicode"
	"unicode/utf8"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/api/convert"
	bootstrap "github.com/llitfkitfk/containerd/api/runtime/bootstrap/v1"
	taskapi "github.com/llitfkitfk/containerd/api/runtime/task/v2"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/runtime"
	"github.com/llitfkitfk/containerd/sys"
	"github.com/llitfkitfk/containerd/version"
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

// The two ways of starting a shim. Shims of containerd 1.x and 2.0-2.2
// read the runtime options, an Any, on stdin and print their address;
// shims of containerd 2.3+ read BootstrapParams, answer with a binary
// BootstrapResult, and refuse anything else before doing anything at all.
// Fed BootstrapParams, a 1.6 shim instead forks its server, writes the
// bundle's address file, then fails to decode the "options" and kills
// the server again: costly, and it leaves a stale address behind. So a
// shim of unknown generation is started the old way first, and the new
// way only after it refused the old; what worked is remembered for the
// binary (see TaskManager.startShim).
type startProtocol int

const (
	protocolUnknown startProtocol = iota
	protocolLegacy
	protocolBootstrap
)

func (p startProtocol) String() string {
	switch p {
	case protocolLegacy:
		return "legacy"
	case protocolBootstrap:
		return "bootstrap"
	}
	return "unknown"
}

// errBootstrapRequired is a shim's refusal of the legacy start.
var errBootstrapRequired = errors.New("shim requires the bootstrap protocol")

// bootstrapRefusal is what a shim of containerd 2.3+ says when it is not
// given BootstrapParams (pkg/shim's errDeprecatedBootstrapAPI).
const bootstrapRefusal = "started through the deprecated API"

// start runs the shim's start command, which forks the long-lived shim (or
// finds the running shim of the task's group) and prints its endpoint.
// opts, the runtime options, go on its stdin as protocol p wants them.
func (b *shimBinary) start(ctx context.Context, opts *anypb.Any, p startProtocol) (*endpoint, error) {
	args := []string{"-id", b.bundle.id}
	if logrus.IsLevelEnabled(logrus.DebugLevel) {
		args = append(args, "-debug")
	}
	args = append(args, "start")

	var stdin []byte
	switch p {
	case protocolBootstrap:
		data, err := b.bootstrapParams(opts)
		if err != nil {
			return nil, err
		}
		stdin = data
	default:
		if opts != nil {
			data, err := proto.Marshal(opts)
			if err != nil {
				return nil, fmt.Errorf("marshal shim options: %w", err)
			}
			stdin = data
		}
	}

	// A caller that gives up must not kill the start command half way,
	// which could leave a shim running that nobody knows about.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startTimeout)
	defer cancel()
	cmd, err := b.command(ctx, args...)
	if err != nil {
		return nil, err
	}
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The shim it forks must not hold our pipes; if a shim leaks them
	// anyway, do not wait for it to exit.
	cmd.WaitDelay = time.Second
	if err := sys.RunManaged(cmd); err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		msg := strings.TrimSpace(stderr.String() + stdout.String())
		if p != protocolBootstrap && strings.Contains(msg, bootstrapRefusal) {
			return nil, fmt.Errorf("start shim %s: %s: %w", b.path, msg, errBootstrapRequired)
		}
		return nil, fmt.Errorf("start shim %s: %s: %w", b.path, msg, err)
	}
	ep, err := parseEndpoint(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("start shim %s: %w", b.path, err)
	}
	return ep, nil
}

// bootstrapParams is the start command's stdin for a shim of containerd
// 2.3+: what the command line and environment also say, which the shim
// checks against them, and the runtime options as the first extension.
func (b *shimBinary) bootstrapParams(opts *anypb.Any) ([]byte, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("daemon binary for shims to publish with: %w", err)
	}
	params := &bootstrap.BootstrapParams{
		InstanceId:             b.bundle.id,
		Namespace:              b.bundle.namespace,
		LogLevel:               bootstrapLogLevel(),
		ContainerdVersion:      version.Version,
		ContainerdTtrpcAddress: b.ttrpcAddress,
		ContainerdGrpcAddress:  b.address,
		ContainerdBinary:       self,
	}
	if opts != nil {
		params.Extensions = []*bootstrap.Extension{{Value: opts}}
	}
	data, err := proto.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("marshal shim bootstrap parameters: %w", err)
	}
	return data, nil
}

func bootstrapLogLevel() bootstrap.LogLevel {
	switch logrus.GetLevel() {
	case logrus.TraceLevel:
		return bootstrap.LogLevel_LOG_LEVEL_TRACE
	case logrus.DebugLevel:
		return bootstrap.LogLevel_LOG_LEVEL_DEBUG
	case logrus.WarnLevel:
		return bootstrap.LogLevel_LOG_LEVEL_WARN
	case logrus.ErrorLevel:
		return bootstrap.LogLevel_LOG_LEVEL_ERROR
	case logrus.FatalLevel:
		return bootstrap.LogLevel_LOG_LEVEL_FATAL
	case logrus.PanicLevel:
		return bootstrap.LogLevel_LOG_LEVEL_PANIC
	}
	return bootstrap.LogLevel_LOG_LEVEL_INFO
}

// endpoint is where and how to reach a shim: its task API version (2 is
// containerd.task.v2.Task, 3 containerd.task.v3.Task, the same messages
// under another service name) over ttrpc at address. Kept in the bundle
// as bootstrap.json, in the JSON form containerd 2.x writes there.
type endpoint struct {
	Version  int32  `json:"version"`
	Address  string `json:"address"`
	Protocol string `json:"protocol"`
}

// Task API versions this daemon speaks.
const (
	minTaskVersion = 2
	maxTaskVersion = 3
)

// parseEndpoint reads a shim's endpoint in each form shims print it and
// bundles keep it: the bare address of 1.x shims, the JSON of 2.0-2.2
// shims (and of bootstrap.json), and the binary BootstrapResult of 2.3+
// shims. An address is printable text, which a BootstrapResult, starting
// with a field tag byte, never is; so text is read as text, and anything
// else as protobuf, which would otherwise accept many a plain string.
func parseEndpoint(out []byte) (*endpoint, error) {
	var ep endpoint
	if s := strings.TrimSpace(string(out)); isText(s) {
		if s == "" {
			return nil, errors.New("shim gave no address")
		}
		if json.Unmarshal([]byte(s), &ep) != nil || ep.Version < 2 {
			// A bare address, or JSON without a version, which 1.x
			// shims never print: taken as it is, as containerd does.
			ep = endpoint{Version: 2, Address: s, Protocol: "ttrpc"}
		}
	} else {
		var res bootstrap.BootstrapResult
		if err := proto.Unmarshal(out, &res); err != nil {
			return nil, fmt.Errorf("shim's bootstrap result %q: %w", out, err)
		}
		ep = endpoint{Version: res.GetVersion(), Address: res.GetAddress(), Protocol: res.GetProtocol()}
	}
	if ep.Version < minTaskVersion || ep.Version > maxTaskVersion {
		return nil, fmt.Errorf("shim task API version %d unsupported, only %d to %d: %w",
			ep.Version, minTaskVersion, maxTaskVersion, errdefs.ErrNotImplemented)
	}
	if !strings.EqualFold(ep.Protocol, "ttrpc") {
		return nil, fmt.Errorf("shim protocol %q unsupported, only ttrpc: %w", ep.Protocol, errdefs.ErrNotImplemented)
	}
	ep.Protocol = "ttrpc"
	if ep.Address == "" {
		return nil, errors.New("shim gave no address")
	}
	return &ep, nil
}

// isText reports whether s is printable UTF-8, as every address is.
func isText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && !unicode.IsSpace(r) {
			return false
		}
	}
	return true
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
