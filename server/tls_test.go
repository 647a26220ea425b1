package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llitfkitfk/containerd/internal/testutil"
)

func TestTCPTLSConfig(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.Issue(t, dir, "ca", nil, nil)
	server := testutil.Issue(t, dir, "server", ca, nil)
	other := testutil.Issue(t, dir, "other", ca, nil)
	caFile, certFile, keyFile, otherKey := ca.CertFile, server.CertFile, server.KeyFile, other.KeyFile
	garbage := writeFile(t, dir, "garbage.pem", "not PEM\n")
	missing := filepath.Join(dir, "missing.pem")

	for name, tc := range map[string]struct {
		config GRPCConfig
		want   []string // in the error
	}{
		"cert without key":  {GRPCConfig{TCPTLSCert: certFile}, []string{"grpc.tcp_tls_key"}},
		"key without cert":  {GRPCConfig{TCPTLSKey: keyFile}, []string{"grpc.tcp_tls_cert"}},
		"ca alone":          {GRPCConfig{TCPTLSCA: caFile}, []string{"grpc.tcp_tls_cert", "grpc.tcp_tls_key"}},
		"missing cert":      {GRPCConfig{TCPTLSCert: missing, TCPTLSKey: keyFile}, []string{missing}},
		"missing key":       {GRPCConfig{TCPTLSCert: certFile, TCPTLSKey: missing}, []string{missing}},
		"invalid cert":      {GRPCConfig{TCPTLSCert: garbage, TCPTLSKey: keyFile}, []string{garbage, "certificate"}},
		"invalid key":       {GRPCConfig{TCPTLSCert: certFile, TCPTLSKey: garbage}, []string{garbage, "key"}},
		"key of other cert": {GRPCConfig{TCPTLSCert: certFile, TCPTLSKey: otherKey}, []string{certFile, otherKey, "does not match"}},
		"missing ca":        {GRPCConfig{TCPTLSCert: certFile, TCPTLSKey: keyFile, TCPTLSCA: missing}, []string{missing}},
		"invalid ca":        {GRPCConfig{TCPTLSCert: certFile, TCPTLSKey: keyFile, TCPTLSCA: garbage}, []string{garbage}},
	} {
		_, err := tc.config.tcpTLSConfig()
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		for _, want := range tc.want {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: err = %v, want it to name %q", name, err, want)
			}
		}
	}

	if c, err := (GRPCConfig{}).tcpTLSConfig(); c != nil || err != nil {
		t.Errorf("no TLS asked for: %v, %v", c, err)
	}
	c, err := GRPCConfig{TCPTLSCert: certFile, TCPTLSKey: keyFile}.tcpTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Certificates) != 1 || c.ClientAuth != tls.NoClientCert || c.MinVersion != tls.VersionTLS12 {
		t.Errorf("cert and key: %d certificates, client auth %v, min version %x", len(c.Certificates), c.ClientAuth, c.MinVersion)
	}
	c, err = GRPCConfig{TCPTLSCert: certFile, TCPTLSKey: keyFile, TCPTLSCA: caFile}.tcpTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientAuth != tls.RequireAndVerifyClientCert || c.ClientCAs == nil {
		t.Errorf("with a CA: client auth %v, client CAs %v", c.ClientAuth, c.ClientCAs)
	}
	if _, err := other.Cert.Verify(x509.VerifyOptions{Roots: c.ClientCAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("a client certificate of the CA does not verify: %v", err)
	}
}

// A bad TLS setting stops New before it touches the root, let alone loads
// a plugin.
func TestBadTCPTLSRefusedBeforePlugins(t *testing.T) {
	c := testConfig(t)
	c.GRPC.TCPTLSCert = filepath.Join(t.TempDir(), "missing.pem")
	c.GRPC.TCPTLSKey = c.GRPC.TCPTLSCert
	_, err := New(context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), c.GRPC.TCPTLSCert) {
		t.Fatalf("err = %v, want the missing file named", err)
	}
	if _, err := os.Stat(c.Root); !os.IsNotExist(err) {
		t.Fatalf("root was made before the TLS files were checked (%v)", err)
	}
}
