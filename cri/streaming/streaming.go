// Package streaming is the CRI plugin's streaming server: the HTTP server
// whose URLs Exec, Attach and PortForward answer with, speaking the
// kubelet's streaming protocols (SPDY and websocket), on Kubernetes'
// k8s.io/cri-streaming library.
package streaming

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"k8s.io/cri-streaming/pkg/streaming"

	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/errdefs"
)

// Runtime is what the server calls for a stream: the CRI runtime service.
type Runtime = streaming.Runtime

// Server hands out stream URLs and serves them.
type Server = streaming.Server

// NewServer returns the server on the config's stream_server_address and
// stream_server_port (port "0": any free port), TLS as configured.
//
// The port is bound here, not in Start, so that a port in use is an error
// of the plugin's start-up and the URLs handed out name the port actually
// bound from the first request on (the library's own Start learns a "0"
// port only once serving, and racily). An empty address is the host's
// address on its default route, as containerd (through Kubernetes'
// ResolveBindAddress) picks it. With enable_tls_streaming and no key pair,
// a self-signed certificate is made in memory, as containerd does.
//
// Start serves until Stop; unlike the library's, it returns nil when
// stopped by Stop.
func NewServer(cfg *config.Config, rt Runtime) (Server, error) {
	sc := streaming.DefaultConfig
	if cfg.StreamIdleTimeout != "" {
		d, err := time.ParseDuration(cfg.StreamIdleTimeout)
		if err != nil {
			return nil, fmt.Errorf("stream_idle_timeout = %q: %v: %w", cfg.StreamIdleTimeout, err, errdefs.ErrInvalidArgument)
		}
		sc.StreamIdleTimeout = d
	}
	tlsConfig, err := tlsConfigOf(cfg)
	if err != nil {
		return nil, err
	}
	sc.TLSConfig = tlsConfig

	addr := cfg.StreamServerAddress
	if addr == "" {
		ip, err := defaultRouteIP()
		if err != nil {
			return nil, fmt.Errorf("stream_server_address is empty and no address to serve on was found: %w", err)
		}
		addr = ip.String()
	}
	port := cfg.StreamServerPort
	if port == "" {
		port = "0"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, port))
	if err != nil {
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	sc.Addr = ln.Addr().String()
	sc.BaseURL = &url.URL{Scheme: "http", Host: sc.Addr}
	if tlsConfig != nil {
		sc.BaseURL.Scheme = "https"
	}
	inner, err := streaming.NewServer(sc, rt)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return &server{
		Server: inner,
		ln:     ln,
		http:   &http.Server{Handler: inner, TLSConfig: tlsConfig},
		tls:    tlsConfig != nil,
	}, nil
}

// server is the library's server (URLs and handlers) served on our
// listener by an http.Server of our own.
type server struct {
	streaming.Server
	ln   net.Listener
	http *http.Server
	tls  bool

	mu      sync.Mutex
	started bool
}

func (s *server) Start(stayUp bool) error {
	if !stayUp {
		return errors.New("streaming server: stayUp=false is not supported")
	}
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("streaming server: already started")
	}
	s.started = true
	s.mu.Unlock()
	var err error
	if s.tls {
		err = s.http.ServeTLS(s.ln, "", "")
	} else {
		err = s.http.Serve(s.ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Stop closes the listener and every connection, streams in progress
// included.
func (s *server) Stop() error {
	err := s.http.Close()
	// Serve closes the listener, unless it never ran.
	s.ln.Close()
	return err
}

// Addr is where the server listens.
func (s *server) Addr() net.Addr { return s.ln.Addr() }

// defaultRouteIP is the address the host sends from by its default route:
// IPv4 first, then IPv6, as Kubernetes' ChooseHostInterface prefers. A
// UDP "connection" only asks the kernel for the route; nothing is sent.
// The destinations are documentation addresses, reached by no route but
// the default one.
func defaultRouteIP() (net.IP, error) {
	var errs []error
	for _, dst := range []string{"192.0.2.1:9", "[2001:db8::1]:9"} {
		c, err := net.Dial("udp", dst)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ip := c.LocalAddr().(*net.UDPAddr).IP
		c.Close()
		if ip.IsGlobalUnicast() {
			return ip, nil
		}
		errs = append(errs, fmt.Errorf("route to %s: source %s is not a global unicast address", dst, ip))
	}
	return nil, errors.Join(errs...)
}

// tlsConfigOf is the server's TLS: none, the configured key pair, or a
// self-signed certificate, with containerd's checks of the settings.
func tlsConfigOf(cfg *config.Config) (*tls.Config, error) {
	certFile, keyFile := cfg.X509KeyPairStreaming.TLSCertFile, cfg.X509KeyPairStreaming.TLSKeyFile
	if !cfg.EnableTLSStreaming {
		if certFile != "" || keyFile != "" {
			return nil, fmt.Errorf("x509_key_pair_streaming is set but enable_tls_streaming is not: %w", errdefs.ErrInvalidArgument)
		}
		return nil, nil
	}
	var cert tls.Certificate
	var err error
	switch {
	case certFile != "" && keyFile != "":
		if cert, err = tls.LoadX509KeyPair(certFile, keyFile); err != nil {
			return nil, fmt.Errorf("streaming server key pair: %w", err)
		}
	case certFile != "":
		return nil, fmt.Errorf("x509_key_pair_streaming: tls_cert_file without tls_key_file: %w", errdefs.ErrInvalidArgument)
	case keyFile != "":
		return nil, fmt.Errorf("x509_key_pair_streaming: tls_key_file without tls_cert_file: %w", errdefs.ErrInvalidArgument)
	default:
		if cert, err = selfSignedCert(time.Now()); err != nil {
			return nil, fmt.Errorf("streaming server certificate: %w", err)
		}
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
}
