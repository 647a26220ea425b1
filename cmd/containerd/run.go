package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli"
	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/server"
	"github.com/llitfkitfk/containerd/sys"
	"github.com/llitfkitfk/containerd/version"
)

var handledSignals = []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGUSR1, unix.SIGPIPE}

func run(ctx context.Context, c *cli.Context) error {
	start := time.Now()
	// Caught before anything else so that a stop asked for during start-up
	// is not lost; SIGPIPE is caught rather than ignored because ignored
	// signals are inherited by the shims this daemon starts.
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, handledSignals...)

	config, err := loadConfig(c)
	if err != nil {
		return err
	}
	if err := applyLogging(config, os.Stderr); err != nil {
		return err
	}
	ctx = log.WithModule(ctx, "containerd")
	log.G(ctx).WithFields(logrus.Fields{
		"version":  version.Version,
		"revision": version.Revision,
	}).Info("starting containerd")

	if err := sys.SetSubreaper(); err != nil {
		log.G(ctx).WithError(err).Warn("failed to become a child subreaper")
	} else {
		// Orphans are re-parented here now: the processes of a container
		// whose shim died, among others. Someone must reap them.
		sys.StartReaper()
	}
	if config.Cgroup.Path != "" {
		// Shims started from here begin in the same cgroup; systemd's
		// Delegate=yes lets the daemon use the subtree it is given.
		if err := sys.JoinCgroup(config.Cgroup.Path, os.Getpid()); err != nil {
			log.G(ctx).WithError(err).Warn("failed to join the configured cgroup")
		}
	}
	if config.OOMScore != 0 {
		if err := sys.SetOOMScore(os.Getpid(), config.OOMScore); err != nil {
			log.G(ctx).WithError(err).Warn("failed to apply oom score")
		}
	}

	if err := checkSockets(config); err != nil {
		return err
	}
	srv, err := server.New(ctx, config)
	if err != nil {
		return err
	}
	listeners, err := listen(ctx, srv, config)
	if err != nil {
		srv.Stop(ctx)
		return err
	}
	if _, err := sys.SdNotify(sys.NotifyReady); err != nil {
		log.G(ctx).WithError(err).Warn("failed to notify systemd")
	}
	log.G(ctx).Infof("containerd successfully booted in %fs", time.Since(start).Seconds())

	for s := range signals {
		switch s {
		case unix.SIGUSR1:
			dumpStacks(ctx)
		case unix.SIGPIPE:
		default:
			log.G(ctx).WithField("signal", s).Info("stopping containerd")
			sys.SdNotify(sys.NotifyStopping)
			srv.Stop(ctx)
			for _, l := range listeners {
				l.close()
			}
			log.G(ctx).Info("containerd stopped")
			return nil
		}
	}
	return nil
}

// listener is one served address and how to let go of it.
type listener struct {
	net.Listener
	path string // a unix socket file to remove on close
}

func (l listener) close() {
	l.Listener.Close()
	if l.path != "" {
		os.Remove(l.path)
	}
}

// checkSockets refuses, before any plugin is loaded, the unix sockets a
// live process serves on, so that a second daemon started on the sockets
// of a running one gives up at once, naming the socket, and leaves the
// first one serving. Sockets left by a daemon that died are fine: listen
// replaces them. Two daemons that start at the same moment may both find
// a socket free here; the one that listens second finds it served then,
// unless both replace the same stale socket at the very same moment.
func checkSockets(config *server.Config) error {
	for _, s := range []struct{ name, path string }{
		{"grpc", config.GRPC.Address},
		{"ttrpc", config.TTRPCAddress()},
		{"debug", config.Debug.Address},
	} {
		if s.path == "" {
			continue
		}
		if err := sys.CheckSocket(s.path); err != nil {
			return fmt.Errorf("%s address: %w", s.name, err)
		}
	}
	return nil
}

// listen opens every configured address and serves on it. The gRPC socket
// comes last so that a client that can connect finds everything running.
func listen(ctx context.Context, srv *server.Server, config *server.Config) ([]listener, error) {
	var opened []listener
	fail := func(err error) ([]listener, error) {
		for _, l := range opened {
			l.close()
		}
		return nil, err
	}
	serve := func(name string, l net.Listener, path string, fn func(net.Listener) error) {
		opened = append(opened, listener{Listener: l, path: path})
		lctx := log.WithModule(ctx, name)
		go func() {
			if err := fn(l); err != nil {
				log.G(lctx).WithError(err).WithField("address", l.Addr()).Debug("serve ended")
			}
		}()
		log.G(lctx).WithField("address", l.Addr()).Info("serving...")
	}

	if config.Debug.Address != "" {
		l, err := sys.GetLocalListener(config.Debug.Address, config.Debug.UID, config.Debug.GID)
		if err != nil {
			return fail(fmt.Errorf("failed to get listener for debug endpoint: %w", err))
		}
		serve("debug", l, config.Debug.Address, srv.ServeDebug)
	}
	if config.Metrics.Address != "" {
		l, err := net.Listen("tcp", config.Metrics.Address)
		if err != nil {
			return fail(fmt.Errorf("failed to get listener for metrics endpoint: %w", err))
		}
		serve("metrics", l, "", srv.ServeMetrics)
	}
	ttrpcAddress := config.TTRPCAddress()
	tl, err := sys.GetLocalListener(ttrpcAddress, config.TTRPC.UID, config.TTRPC.GID)
	if err != nil {
		return fail(fmt.Errorf("failed to get listener for main ttrpc endpoint: %w", err))
	}
	serve("ttrpc", tl, ttrpcAddress, srv.ServeTTRPC)
	if config.GRPC.TCPAddress != "" {
		l, err := net.Listen("tcp", config.GRPC.TCPAddress)
		if err != nil {
			return fail(fmt.Errorf("failed to get listener for TCP grpc endpoint: %w", err))
		}
		serve("grpc", l, "", srv.ServeTCP)
	}
	gl, err := sys.GetLocalListener(config.GRPC.Address, config.GRPC.UID, config.GRPC.GID)
	if err != nil {
		return fail(fmt.Errorf("failed to get listener for main endpoint: %w", err))
	}
	serve("grpc", gl, config.GRPC.Address, srv.ServeGRPC)
	return opened, nil
}

// dumpStacks writes every goroutine's stack to the log, for SIGUSR1.
func dumpStacks(ctx context.Context) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	log.G(ctx).Infof("=== BEGIN goroutine stack dump ===\n%s\n=== END goroutine stack dump ===", buf)
}
