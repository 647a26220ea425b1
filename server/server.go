// Package server builds the daemon from its plugins and serves it: gRPC for
// clients, ttrpc for shims, a debug socket and a metrics endpoint.
package server

import (
	"context"
	"errors"
	"expvar"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/containerd/ttrpc"
	metrics "github.com/docker/go-metrics"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/llitfkitfk/containerd/events/exchange"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/plugin"
)

// stopGrace bounds how long Stop waits for in-flight calls to finish.
const stopGrace = 10 * time.Second

// GRPCService is a plugin that serves on the gRPC socket.
type GRPCService interface {
	Register(*grpc.Server) error
}

// TCPService is a plugin that also serves on the TCP gRPC listener.
type TCPService interface {
	RegisterTCP(*grpc.Server) error
}

// TTRPCService is a plugin that serves shims over ttrpc.
type TTRPCService interface {
	RegisterTTRPC(*ttrpc.Server) error
}

// Server is the daemon once its plugins are loaded.
type Server struct {
	config  *Config
	grpc    *grpc.Server
	tcp     *grpc.Server
	ttrpc   *ttrpc.Server
	events  *exchange.Exchange
	plugins []*plugin.Plugin

	// cancel ends the context plugins were given, which ends their
	// long-running work (event subscriptions among it) at shutdown.
	cancel context.CancelFunc
	// unlock lets go of the root and state directories, once the plugins
	// that keep their data there are closed.
	unlock func()

	mu      sync.Mutex
	servers []*http.Server
}

// The gRPC flow-control windows. A connection may have 16 MiB in flight,
// the most grpc-go's estimator ever grows a window to; a stream a quarter
// of that, so that one large upload leaves room for other calls.
const (
	streamWindow = 4 << 20
	connWindow   = 16 << 20
)

// New loads the plugins config enables, in dependency order, and registers
// the services they provide.
//
// What would keep the daemon from serving is found before any plugin is
// loaded, so that such a daemon gives up at once: the TCP listener's TLS
// files are read, and the root and state directories are locked against
// another daemon for as long as this one runs (see lockDir).
func New(ctx context.Context, config *Config) (_ *Server, retErr error) {
	if filepath.Clean(config.Root) == filepath.Clean(config.State) {
		return nil, fmt.Errorf("root and state must be different paths, both are %s", config.Root)
	}
	tcpTLS, err := config.GRPC.tcpTLSConfig()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(config.Root, 0o711); err != nil {
		return nil, fmt.Errorf("create root %s: %w", config.Root, err)
	}
	if err := os.MkdirAll(config.State, 0o711); err != nil {
		return nil, fmt.Errorf("create state %s: %w", config.State, err)
	}
	unlock, err := lockDirs(config.Root, config.State)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			unlock()
		}
	}()
	if config.TempDir != "" {
		if err := os.MkdirAll(config.TempDir, 0o711); err != nil {
			return nil, fmt.Errorf("create temp %s: %w", config.TempDir, err)
		}
		os.Setenv("TMPDIR", config.TempDir)
	}
	// Temporary mounts live under the root, and what a killed run left
	// mounted there goes before any plugin could make new ones.
	if err := mount.SetTempMountLocation(filepath.Join(config.Root, "tmpmounts")); err != nil {
		return nil, err
	}
	if err := mount.CleanupTempMounts(); err != nil {
		log.G(ctx).WithError(err).Warn("clean up temporary mounts a previous run left")
	}

	registrations, err := plugin.Graph(config.disabled)
	if err != nil {
		return nil, err
	}

	if err := registerMetrics(config.Metrics.GRPCHistogram); err != nil {
		return nil, err
	}
	opts := []grpc.ServerOption{
		grpc.UnaryInterceptor(unaryInterceptor),
		grpc.StreamInterceptor(streamInterceptor),
		// Fixed flow-control windows instead of grpc-go's estimate of
		// them, which pings the client after every request that carries
		// data: the client must read and answer each ping, so a client
		// making one call after another, as ctr does, has its next call
		// wait behind that work. In a ctr run a third of the frames ctr
		// read were those pings and the window updates that followed.
		grpc.StaticStreamWindowSize(streamWindow),
		grpc.StaticConnWindowSize(connWindow),
	}
	if config.GRPC.MaxRecvMsgSize > 0 {
		opts = append(opts, grpc.MaxRecvMsgSize(config.GRPC.MaxRecvMsgSize))
	}
	if config.GRPC.MaxSendMsgSize > 0 {
		opts = append(opts, grpc.MaxSendMsgSize(config.GRPC.MaxSendMsgSize))
	}
	tcpOpts := opts
	if tcpTLS != nil {
		tcpOpts = append([]grpc.ServerOption{grpc.Creds(credentials.NewTLS(tcpTLS))}, opts...)
	}
	// Calls on the socket run on goroutines kept for them, whose stacks
	// have grown already, rather than on a new goroutine each, whose stack
	// grows by copying several times in every call. Clients share a
	// connection among many callers (containerd's Go client, the kubelet),
	// so there are as many workers as such a client has calls in flight:
	// with 64 callers on one connection and 8 workers, 7 calls in 8 ran on
	// fresh goroutines and copying stacks took 16% of the daemon's CPU;
	// with 64 workers 1.5%, and 6% less CPU per call in all. Streams that
	// stay open (event subscriptions) hold a worker each; when all are
	// busy, calls get goroutines of their own. An idle worker costs little:
	// the collector shrinks its stack. The TCP listener, rarely used, has
	// none.
	opts = append(opts[:len(opts):len(opts)], grpc.NumStreamWorkers(uint32(max(64, 4*runtime.GOMAXPROCS(0)))))
	ttrpcServer, err := ttrpc.NewServer(ttrpc.WithServerHandshaker(ttrpc.UnixSocketRequireSameUser()))
	if err != nil {
		return nil, err
	}

	pctx, cancel := context.WithCancel(ctx)
	s := &Server{
		config: config,
		grpc:   grpc.NewServer(opts...),
		tcp:    grpc.NewServer(tcpOpts...),
		ttrpc:  ttrpcServer,
		events: exchange.NewExchange(),
		cancel: cancel,
		unlock: unlock,
	}
	if err := s.loadPlugins(pctx, registrations); err != nil {
		cancel()
		s.closePlugins(ctx)
		return nil, err
	}
	// Every method served has its series, at zero, from the start.
	callMetrics.Add(s.grpc)
	callMetrics.Add(s.tcp)
	go manageMemory(pctx, os.Getenv("GOGC") == "")
	return s, nil
}

// registerMetrics puts the gRPC call counters, and the handling-time
// histogram if config asks for it, on the registry /v1/metrics serves.
// That happens once per process: the counters are the process's, shared by
// both gRPC servers (and by every Server a test makes).
func registerMetrics(histogram bool) error {
	metricsOnce.Do(func() {
		if histogram {
			callMetrics.EnableHandlingTimeHistogram()
			metricsErr = prometheus.Register(callMetrics.HandlingTimeHistogram())
		}
		if metricsErr == nil {
			metricsErr = prometheus.Register(callMetrics)
		}
	})
	return metricsErr
}

var (
	metricsOnce sync.Once
	metricsErr  error
)

func (s *Server) loadPlugins(ctx context.Context, registrations []*plugin.Registration) error {
	var (
		config   = s.config
		set      = plugin.NewPluginSet()
		required = map[string]bool{}
		known    = map[string]bool{}
		services []interface{}
	)
	for _, uri := range config.RequiredPlugins {
		required[uri] = true
	}
	for _, r := range plugin.Registrations() {
		known[r.URI()] = true
		known[r.ID] = true
	}
	for _, r := range registrations {
		pctx := log.WithModule(ctx, r.URI())
		log.G(pctx).WithField("type", r.Type).Info("loading plugin")

		ic := plugin.NewContext(pctx, r, set, config.Root, config.State)
		ic.Events = s.events
		ic.Address = config.GRPC.Address
		ic.TTRPCAddress = config.TTRPCAddress()
		cfg, err := config.Decode(r)
		if err != nil {
			return err // a bad value in the file is the operator's to fix
		}
		ic.Config = cfg

		p := r.Init(ic)
		if err := set.Add(p); err != nil {
			return err
		}
		s.plugins = append(s.plugins, p)
		instance, err := p.Instance()
		if err != nil {
			if plugin.IsSkipPlugin(err) {
				log.G(pctx).WithError(err).Info("skip loading plugin")
			} else {
				log.G(pctx).WithError(err).Warn("failed to load plugin")
			}
			if required[r.URI()] {
				return fmt.Errorf("load required plugin %s: %w", r.URI(), err)
			}
			continue
		}
		delete(required, r.URI())
		services = append(services, instance)
	}
	for uri := range required {
		return fmt.Errorf("required plugin %s is not included or is disabled", uri)
	}
	for _, key := range config.Unknown(func(k string) bool { return known[k] }) {
		log.G(ctx).WithField("key", key).Warn("ignoring unknown config key")
	}

	for _, svc := range services {
		if g, ok := svc.(GRPCService); ok {
			if err := g.Register(s.grpc); err != nil {
				return err
			}
		}
		if t, ok := svc.(TCPService); ok {
			if err := t.RegisterTCP(s.tcp); err != nil {
				return err
			}
		}
		if t, ok := svc.(TTRPCService); ok {
			if err := t.RegisterTTRPC(s.ttrpc); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Config) disabled(r *plugin.Registration) bool {
	for _, d := range c.DisabledPlugins {
		if d == r.URI() || (c.Version == 1 && d == r.ID) {
			return true
		}
	}
	return false
}

// TTRPCAddress is where shims reach the daemon: the configured ttrpc
// address, or the gRPC socket's path with ".ttrpc" added.
func (c *Config) TTRPCAddress() string {
	if c.TTRPC.Address != "" {
		return c.TTRPC.Address
	}
	return c.GRPC.Address + ".ttrpc"
}

// Events returns the daemon's event exchange.
func (s *Server) Events() *exchange.Exchange { return s.events }

// Plugins returns the loaded plugins, failed ones included, in load order.
func (s *Server) Plugins() []*plugin.Plugin { return s.plugins }

// ServeGRPC serves the gRPC API on l.
func (s *Server) ServeGRPC(l net.Listener) error {
	return s.grpc.Serve(l)
}

// ServeTCP serves the TCP subset of the gRPC API on l.
func (s *Server) ServeTCP(l net.Listener) error {
	return s.tcp.Serve(l)
}

// ServeTTRPC serves shims on l.
func (s *Server) ServeTTRPC(l net.Listener) error {
	return s.ttrpc.Serve(context.Background(), l)
}

// ServeMetrics serves Prometheus text at /v1/metrics on l.
func (s *Server) ServeMetrics(l net.Listener) error {
	m := http.NewServeMux()
	m.Handle("/v1/metrics", metrics.Handler())
	return s.serveHTTP(l, m)
}

// ServeDebug serves pprof and expvar on l.
func (s *Server) ServeDebug(l net.Listener) error {
	m := http.NewServeMux()
	m.Handle("/debug/vars", expvar.Handler())
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return s.serveHTTP(l, m)
}

func (s *Server) serveHTTP(l net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Minute}
	s.mu.Lock()
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Stop ends the plugins' long-running work, lets in-flight calls finish
// for a bounded time, closes the listeners and then the plugins in reverse
// load order.
func (s *Server) Stop(ctx context.Context) {
	s.cancel()
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		s.tcp.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(stopGrace):
		log.G(ctx).Warn("in-flight calls did not finish in time; stopping anyway")
		s.grpc.Stop()
		s.tcp.Stop()
	}
	sctx, cancel := context.WithTimeout(ctx, stopGrace)
	defer cancel()
	if err := s.ttrpc.Shutdown(sctx); err != nil {
		s.ttrpc.Close()
	}
	s.mu.Lock()
	for _, srv := range s.servers {
		srv.Close()
	}
	s.mu.Unlock()
	s.closePlugins(ctx)
	s.unlock()
}

func (s *Server) closePlugins(ctx context.Context) {
	for i := len(s.plugins) - 1; i >= 0; i-- {
		p := s.plugins[i]
		instance, err := p.Instance()
		if err != nil {
			continue
		}
		if c, ok := instance.(io.Closer); ok {
			if err := c.Close(); err != nil {
				log.G(ctx).WithError(err).WithField("id", p.Registration.URI()).Error("failed to close plugin")
			}
		}
	}
}
