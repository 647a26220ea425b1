package server

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	criio "github.com/llitfkitfk/containerd/cri/io"
	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
)

// The type URLs of what the container record and the shim carry, as
// containerd names them, so that other clients decode them alike.
const (
	specTypeURL      = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
	resourcesTypeURL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
	// containerMetadataTypeURL names the JSON of store.ContainerMetadata
	// in the record's extension.
	containerMetadataTypeURL = "github.com/llitfkitfk/containerd/cri/store/ContainerMetadata"
)

// Reasons a container's exit is reported with, as containerd's.
const (
	reasonCompleted  = "Completed"
	reasonError      = "Error"
	reasonOOMKilled  = "OOMKilled"
	reasonStartError = "StartError"
	// exitCodeStartError is the exit code of a container whose start
	// failed (containerd's errorStartExitCode).
	exitCodeStartError = 128
	// exitCodeUnknown is that of a container whose task vanished while
	// the daemon was down (containerd's unknownExitCode).
	exitCodeUnknown = 255
	reasonUnknown   = "Unknown"
)

// newID returns a new container or exec id: 32 random bytes in hex, as
// containerd's, so ids never collide and any prefix crictl shows works.
func newID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

// makeContainerName is the name a container is unique by, as containerd
// makes it: the kubelet's container name and attempt with its pod's name,
// namespace and uid, so that two pods' containers never clash.
func makeContainerName(c *runtime.ContainerMetadata, sb *runtime.PodSandboxMetadata) string {
	return strings.Join([]string{
		c.GetName(),
		sb.GetName(),
		sb.GetNamespace(),
		sb.GetUid(),
		strconv.FormatUint(uint64(c.GetAttempt()), 10),
	}, "_")
}

// parseSignal reads a signal by name, with or without SIG ("SIGTERM",
// "term", "SIGRTMIN+1"), or by number.
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal %q out of range: %w", s, errdefs.ErrInvalidArgument)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	// SIGRTMIN+n and SIGRTMAX-n, which unix.SignalNum does not know.
	if base, off, ok := strings.Cut(name, "+"); ok && base == "SIGRTMIN" {
		if n, err := strconv.Atoi(off); err == nil && n >= 0 && sigRTMIN+n <= sigRTMAX {
			return syscall.Signal(sigRTMIN + n), nil
		}
	}
	if base, off, ok := strings.Cut(name, "-"); ok && base == "SIGRTMAX" {
		if n, err := strconv.Atoi(off); err == nil && n >= 0 && sigRTMAX-n >= sigRTMIN {
			return syscall.Signal(sigRTMAX - n), nil
		}
	}
	switch name {
	case "SIGRTMIN":
		return syscall.Signal(sigRTMIN), nil
	case "SIGRTMAX":
		return syscall.Signal(sigRTMAX), nil
	}
	return 0, fmt.Errorf("unknown signal %q: %w", s, errdefs.ErrInvalidArgument)
}

// Linux's real-time signal range as user space sees it (glibc keeps
// 32 and 33 for itself).
const sigRTMIN, sigRTMAX = 34, 64

// criStopSignal is the OCI name of a CRI stop signal ("" for the runtime's
// default): SIGNAL_SIGRTMINPLUS1 is SIGRTMIN+1.
func criStopSignal(sig runtime.Signal) (string, error) {
	if sig == runtime.Signal_SIGNAL_RUNTIME_DEFAULT {
		return "", nil
	}
	name, ok := runtime.Signal_name[int32(sig)]
	if !ok {
		return "", fmt.Errorf("unknown stop signal %d: %w", sig, errdefs.ErrInvalidArgument)
	}
	name = strings.TrimPrefix(name, "SIGNAL_")
	name = strings.Replace(name, "PLUS", "+", 1)
	name = strings.Replace(name, "MINUS", "-", 1)
	return name, nil
}

// toCRISignal is the CRI enum of an OCI signal name (RUNTIME_DEFAULT if it
// has none).
func toCRISignal(name string) runtime.Signal {
	if name == "" {
		return runtime.Signal_SIGNAL_RUNTIME_DEFAULT
	}
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	n = strings.Replace(n, "+", "PLUS", 1)
	n = strings.Replace(n, "-", "MINUS", 1)
	if v, ok := runtime.Signal_value["SIGNAL_"+n]; ok {
		return runtime.Signal(v)
	}
	return runtime.Signal_SIGNAL_RUNTIME_DEFAULT
}

// containerIO returns the container's stdio (nil if it has none, e.g. it
// could not be reopened after a restart).
func containerIO(c *store.Container) *criio.ContainerIO {
	cio, _ := c.IO.(*criio.ContainerIO)
	return cio
}

// The container's files.
func (s *Service) containerRootDir(id string) string {
	return filepath.Join(s.config.RootDir, "containers", id)
}

func (s *Service) containerStateDir(id string) string {
	return filepath.Join(s.config.StateDir, "containers", id)
}

func (s *Service) containerStatusFile(id string) string {
	return filepath.Join(s.containerRootDir(id), "status")
}

// serialWriter lets the stdout and stderr loggers of a container write
// one log file without interleaving within a line.
type serialWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *serialWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// openContainerLog opens the container's log file and returns the CRI
// loggers for its stdout and stderr (stderr nil with a tty, whose output is
// all on stdout). The file is closed once both loggers are closed and have
// flushed.
func (s *Service) openContainerLog(c *store.Container) (stdout, stderr io.WriteCloser, err error) {
	path := c.Metadata.LogPath
	f, err := criio.OpenLog(path)
	if err != nil {
		return nil, nil, fmt.Errorf("opening log file %s: %w", path, err)
	}
	w := &serialWriter{w: f}
	maxLen := s.config.MaxContainerLogLineSize
	stdout, outDone := criio.NewCRILogger(path, w, criio.Stdout, maxLen)
	var errDone <-chan struct{}
	if !c.Metadata.Config.GetTty() {
		stderr, errDone = criio.NewCRILogger(path, w, criio.Stderr, maxLen)
	}
	go func() {
		if outDone != nil {
			<-outDone
		}
		if errDone != nil {
			<-errDone
		}
		f.Close()
	}()
	return stdout, stderr, nil
}

// attachLog sends the container's output to its log file, if it has one.
func (s *Service) attachLog(c *store.Container, cio *criio.ContainerIO) error {
	if c.Metadata.LogPath == "" || cio == nil {
		return nil
	}
	stdout, stderr, err := s.openContainerLog(c)
	if err != nil {
		return err
	}
	oldOut, oldErr := cio.AddOutput("log", stdout, stderr)
	closeAll(oldOut, oldErr)
	return nil
}

func closeAll(ws ...io.WriteCloser) {
	for _, w := range ws {
		if w != nil {
			w.Close()
		}
	}
}

// grpcError converts an error for a CRI answer.
func grpcError(err error) error { return errdefs.ToGRPC(err) }

// recursiveReadOnlySupported tells whether recursive read-only mounts can
// be made: runc does them with mount_setattr, Linux 5.12 and later.
var recursiveReadOnlySupported = sync.OnceValue(func() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	return kernelAtLeast(unix.ByteSliceToString(u.Release[:]), 5, 12)
})

// kernelAtLeast compares a kernel release ("6.1.0-18-amd64") with
// major.minor.
func kernelAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	mnr := parts[1]
	if i := strings.IndexFunc(mnr, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		mnr = mnr[:i]
	}
	min, err2 := strconv.Atoi(mnr)
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || (maj == major && min >= minor)
}
