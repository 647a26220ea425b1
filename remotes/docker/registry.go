// Package docker holds what a client of registries speaking the Docker /
// OCI distribution API needs to know about the hosts it talks to.
package docker

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// HostCapabilities are the operations a registry host is trusted with.
// A public mirror should only pull (fetch by digest); resolving a tag to a
// digest and pushing belong to trusted hosts.
type HostCapabilities uint8

const (
	// HostCapabilityPull: fetch manifests and blobs by digest.
	HostCapabilityPull HostCapabilities = 1 << iota
	// HostCapabilityResolve: fetch manifests by tag.
	HostCapabilityResolve
	// HostCapabilityPush: upload blobs and manifests.
	HostCapabilityPush
	// HostCapabilityReferrers: list referrers (OCI distribution 1.1).
	// containerd 2.x accepts it in hosts.toml, so it is known here too.
	HostCapabilityReferrers
)

// HostCapabilityAll is what a host without a capabilities list may do.
const HostCapabilityAll = HostCapabilityPull | HostCapabilityResolve | HostCapabilityPush | HostCapabilityReferrers

// Has reports whether c includes every capability in t.
func (c HostCapabilities) Has(t HostCapabilities) bool {
	return c&t == t
}

// Authorizer adds credentials to requests to a registry and learns from
// its challenges. The registry client provides the implementations.
type Authorizer interface {
	// Authorize adds an Authorization header to req, if one is known.
	Authorize(ctx context.Context, req *http.Request) error
	// AddResponses learns from the responses of a request, the last
	// one being a 401 with a WWW-Authenticate challenge.
	AddResponses(ctx context.Context, responses []*http.Response) error
}

// RegistryHost is one endpoint to try for a registry: where it is, how to
// reach it and what it may be used for.
type RegistryHost struct {
	Client       *http.Client
	Authorizer   Authorizer // nil: anonymous
	Host         string     // host[:port]
	Scheme       string     // "https" or "http"
	Path         string     // API root, usually "/v2"
	Capabilities HostCapabilities
	Header       http.Header // sent with every request to this host
}

// RegistryHosts returns, for the host part of an image reference
// ("docker.io", "localhost:5000"), the endpoints to try, in order.
type RegistryHosts func(host string) ([]RegistryHost, error)

// IsLocalhost reports whether host (with or without a port) is
// "localhost" or a loopback address.
func IsLocalhost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// DefaultHTTPTransport is the transport registry clients use, with the
// timeouts containerd uses; tlsConfig may be nil.
func DefaultHTTPTransport(tlsConfig *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:       30 * time.Second,
			KeepAlive:     30 * time.Second,
			FallbackDelay: 300 * time.Millisecond,
		}).DialContext,
		MaxIdleConns: 10,
		// A pull fetches several layers of one host at once: keep their
		// connections (the default keeps two per host).
		MaxIdleConnsPerHost:   10,
		IdleConnTimeout:       30 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		TLSClientConfig:       tlsConfig,
		ExpectContinueTimeout: 5 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
}

// NewHTTPFallback wraps a transport for a host whose scheme is ambiguous
// (a loopback registry on a port other than 80 or 443, or an http host
// given a TLS configuration): requests go out as https, and when the
// server answers TLS with plain HTTP (or, for a host without a port,
// refuses the connection), the request is sent again as http, as are all
// later requests to that host.
func NewHTTPFallback(rt http.RoundTripper) http.RoundTripper {
	return &httpFallback{next: rt}
}

type httpFallback struct {
	next http.RoundTripper

	mu    sync.Mutex
	plain map[string]bool // hosts that answered in plain HTTP
}

func (f *httpFallback) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	plain := f.plain[req.URL.Host]
	f.mu.Unlock()

	if !plain {
		resp, err := f.next.RoundTrip(req)
		if !speaksPlainHTTP(err, req.URL.Host) {
			return resp, err
		}
		f.mu.Lock()
		if f.plain == nil {
			f.plain = map[string]bool{}
		}
		f.plain[req.URL.Host] = true
		f.mu.Unlock()
	}

	u := *req.URL
	u.Scheme = "http"
	plainReq := req.Clone(req.Context())
	plainReq.URL = &u
	if !plain && req.Body != nil && req.GetBody != nil {
		// The first attempt may have read from the body.
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		plainReq.Body = body
	}
	return f.next.RoundTrip(plainReq)
}

// speaksPlainHTTP reports whether err, from an https request to host,
// says the server is a plain HTTP one.
func speaksPlainHTTP(err error, host string) bool {
	if err == nil {
		return false
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) && string(rh.RecordHeader[:]) == "HTTP/" {
		return true
	}
	if strings.Contains(err.Error(), "TLS handshake timeout") {
		return true
	}
	// Nothing listening on 443: try 80, but only when no port was named.
	if _, port, _ := net.SplitHostPort(host); port == "" {
		return errors.Is(err, syscall.ECONNREFUSED) || os.IsTimeout(err)
	}
	return false
}
