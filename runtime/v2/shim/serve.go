package shim

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/containerd/ttrpc"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	taskapi "github.com/llitfkitfk/containerd/api/runtime/task/v2"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/sys"
)

const (
	// serverShutdownTimeout bounds waiting for calls in flight, the
	// Shutdown call's own answer among them, once the shim stops serving.
	serverShutdownTimeout = 2 * time.Second
	// publisherFlushTimeout bounds delivering the events still queued
	// when the shim exits.
	publisherFlushTimeout = 5 * time.Second
	// logFifo in the bundle is where a serving shim logs; the daemon
	// opens its reading end before it runs start.
	logFifo = "log"
)

// CommandRunner may be implemented by the task service NewService
// returns. A shim reaps its children (it is their subreaper), and a
// service that reaps every child with wait4(-1) takes the exit status of
// commands the frame runs, the publish binary: then the frame runs them
// through RunCommand, which must start cmd, wait for it and return as
// cmd.Run does.
type CommandRunner interface {
	RunCommand(cmd *exec.Cmd) error
}

// serve is the serving shim, the one start forked: it serves the task
// API on the socket it inherited until it is shut down.
func serve(ctx context.Context, m Manager, f *flags) error {
	// A shim per task (or pod) adds up: fewer threads and a tighter heap
	// keep each one small, as containerd's shims do.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(2)
	}
	debug.SetGCPercent(40)

	// Exit signals end the shim as Shutdown does. SIGPIPE, from writing
	// the log fifo with the daemon away, is taken and dropped, not
	// ignored: an ignored signal stays ignored in what the shim execs
	// (runc, container processes). A terminal's ^C never reaches the shim,
	// which has a session of its own. SIGCHLD is the task service's.
	// SIGUSR1 logs every goroutine's stack, as containerd's shims do.
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, unix.SIGTERM, unix.SIGINT, unix.SIGPIPE, unix.SIGUSR1)

	logger := setupLogging(f.debug).WithField("runtime", m.Name())
	// The service's context ends with the shim.
	ctx, cancel := context.WithCancel(log.WithLogger(ctx, logger))
	defer cancel()
	if err := sys.SetSubreaper(); err != nil {
		return fmt.Errorf("become a child subreaper: %w", err)
	}

	l, sockPath, err := serveListener(f.socket)
	if err != nil {
		return err
	}
	var sockFile os.FileInfo
	if sockPath != "" {
		sockFile, _ = os.Lstat(sockPath)
	}
	var removeOnce sync.Once
	removeSocket := func() {
		// Once only: a new shim's socket may come to have the same inode.
		removeOnce.Do(func() {
			if err := removeOwnSocket(sockPath, sockFile); err != nil {
				logger.WithError(err).Warn("remove shim socket")
			}
		})
	}
	defer removeSocket()

	pub := NewPublisher(PublisherOpts{
		Namespace:     f.namespace,
		TTRPCAddress:  os.Getenv(ttrpcAddressEnv),
		PublishBinary: f.publishBinary,
		Address:       f.address,
	})
	defer func() {
		fctx, cancel := context.WithTimeout(context.Background(), publisherFlushTimeout)
		defer cancel()
		if err := pub.Close(fctx); err != nil {
			logger.WithError(err).Warn("events left unpublished")
		}
	}()

	shutdown := make(chan struct{})
	var once sync.Once
	svc, err := m.NewService(ctx, ServiceOpts{
		ID:        f.id,
		Namespace: f.namespace,
		Publisher: pub,
		Shutdown:  func() { once.Do(func() { close(shutdown) }) },
	})
	if err != nil {
		l.Close()
		return fmt.Errorf("task service: %w", err)
	}
	if r, ok := svc.(CommandRunner); ok {
		pub.setCommandRunner(r.RunCommand)
	}

	var calls callTracker
	server, err := ttrpc.NewServer(
		ttrpc.WithServerHandshaker(calls.handshaker(ttrpc.UnixSocketRequireSameUser())),
	)
	if err != nil {
		l.Close()
		return fmt.Errorf("ttrpc server: %w", err)
	}
	taskapi.RegisterTaskService(server, svc)
	served := make(chan error, 1)
	go func() { served <- server.Serve(ctx, l) }()
	logger.WithFields(logrus.Fields{"pid": os.Getpid(), "namespace": f.namespace, "id": f.id}).Debug("shim serving")

	stopFreeing := freeMemoryPeriodically()
	defer stopFreeing()

wait:
	for {
		select {
		case <-shutdown:
			logger.Debug("shim shut down")
			break wait
		case s := <-signals:
			switch s {
			case unix.SIGPIPE:
				continue
			case unix.SIGUSR1:
				logger.Infof("=== goroutine stacks ===\n%s\n=== end of goroutine stacks ===", allStacks())
				continue
			}
			logger.WithField("signal", s).Info("shim exits on signal")
			break wait
		case err := <-served:
			// The listener failed: no daemon can reach the shim again.
			return fmt.Errorf("serve task API: %w", err)
		}
	}
	sctx, scancel := context.WithTimeout(context.Background(), serverShutdownTimeout)
	defer scancel()
	// ttrpc marks a connection busy only once it has looked at it again
	// after a request came in, and closes connections it thinks idle:
	// closed while the Shutdown call that brought us here is still
	// answering, its answer would be lost. So wait for every answer owed,
	// that one among them, to be written first; then for the daemons to
	// hang up, for at most answerGrace (see callTracker). Close then
	// (which, unlike Shutdown, does not poll every 200ms for busy
	// connections) lets each go; the rest goes with the process.
	calls.waitUntil(sctx, func(owed, _ int) bool { return owed == 0 })
	gctx, gcancel := context.WithTimeout(sctx, answerGrace)
	calls.waitUntil(gctx, func(_, open int) bool { return open == 0 })
	gcancel()
	server.Close()
	// Now, not after the events are flushed: from here on a start of the
	// group finds the socket refusing, and makes a new shim.
	removeSocket()
	return nil
}

// removeOwnSocket removes the socket file at path if it still is the one
// this shim was given, fi. Once the shim stopped listening, a start of a
// task of its group may have found the socket stale and put a new shim's
// in its place, which must stay. The check and the removal are made under
// the socket directory's lock, which such a start holds while it replaces
// a socket.
func removeOwnSocket(path string, fi os.FileInfo) error {
	if path == "" || fi == nil {
		return nil
	}
	unlock, err := lockDir(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer unlock()
	now, err := os.Lstat(path)
	if err != nil || !os.SameFile(fi, now) {
		return nil // gone, or another shim's
	}
	return os.Remove(path)
}

// answerGrace bounds waiting, once every answer is written, for the
// peers to hang up: time for a client to take an answer in (a read on a
// local socket and a goroutine switch) before its connection ends.
const answerGrace = 20 * time.Millisecond

// serveListener is the listener start handed down as fd 3, or one on
// path for a shim run by hand with -socket. It returns the socket file's
// path, for removal on exit.
func serveListener(path string) (net.Listener, string, error) {
	if path != "" {
		if len(path) > maxSocketPath {
			return nil, "", fmt.Errorf("socket path %s is longer than %d bytes", path, maxSocketPath)
		}
		l, err := listenUnix(path)
		if err != nil {
			return nil, "", fmt.Errorf("listen on %s: %w", path, err)
		}
		l.SetUnlinkOnClose(false)
		return l, path, nil
	}
	f := os.NewFile(3, "shim socket")
	defer f.Close() // the listener has its own descriptor, close-on-exec
	l, err := net.FileListener(f)
	if err != nil {
		return nil, "", fmt.Errorf("listener on fd 3 (start hands it down; use -socket to run the shim by hand): %w", err)
	}
	var sockPath string
	if a, ok := l.Addr().(*net.UnixAddr); ok && a.Name != "" && a.Name[0] != '@' {
		sockPath = a.Name
	}
	return l, sockPath, nil
}

// setupLogging sends logs, as logrus text, to the bundle's log fifo, where
// the daemon reads them into its own log, and makes the fifo the shim's
// stderr too, so that a panic's trace lands there as well. Without the
// fifo (a shim run by hand, or a daemon that made none), stderr it is.
//
// The fifo is opened without waiting for a reader, which must be there:
// blocking here would hang the shim for good if the daemon went away.
// Writes then block as pipe writes do, so no line is lost or cut.
func setupLogging(debugLevel bool) *logrus.Entry {
	logrus.SetFormatter(&logrus.TextFormatter{TimestampFormat: log.RFC3339NanoFixed, FullTimestamp: true})
	logrus.SetLevel(logrus.InfoLevel)
	if debugLevel {
		logrus.SetLevel(logrus.DebugLevel)
	}
	if fi, err := os.Stat(logFifo); err == nil && fi.Mode().Type() == os.ModeNamedPipe {
		if fd, err := unix.Open(logFifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
			if unix.SetNonblock(fd, false) == nil {
				unix.Dup3(fd, 2, 0) // not close-on-exec: stderr is inherited
			}
			unix.Close(fd)
		}
	}
	logrus.SetOutput(os.Stderr)
	return log.L
}

// freeMemoryPeriodically returns memory the shim no longer uses to the
// system every 30 seconds, as containerd's shims do: a shim is mostly
// idle, and a heap grown by a burst would otherwise stay resident.
func freeMemoryPeriodically() (stop func()) {
	t := time.NewTicker(30 * time.Second)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.C:
				debug.FreeOSMemory()
			case <-done:
				return
			}
		}
	}()
	return func() { t.Stop(); close(done) }
}

// allStacks returns the stacks of all goroutines.
func allStacks() []byte {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}
