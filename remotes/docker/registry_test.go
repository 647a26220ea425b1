package docker

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHostCapabilitiesHas(t *testing.T) {
	c := HostCapabilityPull | HostCapabilityResolve
	for _, tc := range []struct {
		want HostCapabilities
		has  bool
	}{
		{HostCapabilityPull, true},
		{HostCapabilityResolve, true},
		{HostCapabilityPull | HostCapabilityResolve, true},
		{HostCapabilityPush, false},
		{HostCapabilityPull | HostCapabilityPush, false},
	} {
		if got := c.Has(tc.want); got != tc.has {
			t.Errorf("%b.Has(%b) = %v, want %v", c, tc.want, got, tc.has)
		}
	}
}

func TestIsLocalhost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost":      true,
		"localhost:5000": true,
		"127.0.0.1":      true,
		"127.0.0.2:5000": true,
		"[::1]:5000":     true,
		"::1":            true,
		"docker.io":      false,
		"10.0.0.1:5000":  false,
		"localhost.io":   false,
	} {
		if got := IsLocalhost(host); got != want {
			t.Errorf("IsLocalhost(%q) = %v, want %v", host, got, want)
		}
	}
}

// A plain HTTP server reached as https through the fallback answers over
// http, the body of the request intact, and later requests go straight to
// http.
func TestHTTPFallbackToPlainHTTP(t *testing.T) {
	var tlsRequests, requests int
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		if r.TLS != nil {
			tlsRequests++
		}
		b, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, r.Method+" "+string(b))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	url := strings.Replace(srv.URL, "http://", "https://", 1) + "/v2/"

	insecure := DefaultHTTPTransport(&tls.Config{InsecureSkipVerify: true})
	if _, err := (&http.Client{Transport: insecure}).Get(url); err == nil {
		t.Fatal("https to a plain HTTP server succeeded without the fallback")
	}

	conns.Store(0)
	client := &http.Client{Transport: NewHTTPFallback(insecure)}
	for i, body := range []string{"first", "second"} {
		resp, err := client.Post(url, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != "POST "+body {
			t.Errorf("request %d: server saw %q, want %q", i, got, "POST "+body)
		}
	}
	if requests != 2 || tlsRequests != 0 {
		t.Errorf("server handled %d requests (%d over TLS), want 2 plain", requests, tlsRequests)
	}
	// One refused TLS handshake, then one kept-alive plain connection:
	// the second request did not try https again.
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// A TLS server reached through the fallback stays on https.
func TestHTTPFallbackKeepsHTTPS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			t.Error("request arrived without TLS")
		}
	}))
	defer srv.Close()
	client := &http.Client{Transport: NewHTTPFallback(DefaultHTTPTransport(&tls.Config{InsecureSkipVerify: true}))}
	resp, err := client.Get(srv.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Errorf("status %d, TLS %v: want 200 over TLS", resp.StatusCode, resp.TLS != nil)
	}
}
