package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/llitfkitfk/containerd/errdefs"
)

// tcpTLSConfig returns the TLS config of the TCP gRPC listener, or nil when
// [grpc] asks for none, in which case that listener is plaintext.
//
// As in containerd, tcp_tls_cert and tcp_tls_key make the listener serve
// TLS with that certificate, and tcp_tls_ca in addition makes it require a
// client certificate signed by that CA. containerd serves plaintext when
// only the key or only the CA is set, and accepts a CA file with no
// certificate in it, which then refuses every client; here every half-made
// setting is refused, since an operator who asked for TLS must not be
// served without it. The files are read and checked here, before any
// plugin is loaded, so that a daemon with a bad one gives up at once,
// naming it. TLS 1.2 is the oldest version served.
func (c GRPCConfig) tcpTLSConfig() (*tls.Config, error) {
	switch {
	case c.TCPTLSCert == "" && c.TCPTLSKey == "" && c.TCPTLSCA == "":
		return nil, nil
	case c.TCPTLSCert == "" && c.TCPTLSKey == "":
		return nil, fmt.Errorf(`key "grpc.tcp_tls_ca" is set without "grpc.tcp_tls_cert" and "grpc.tcp_tls_key": %w`, errdefs.ErrInvalidArgument)
	case c.TCPTLSKey == "":
		return nil, fmt.Errorf(`key "grpc.tcp_tls_cert" is set without "grpc.tcp_tls_key": %w`, errdefs.ErrInvalidArgument)
	case c.TCPTLSCert == "":
		return nil, fmt.Errorf(`key "grpc.tcp_tls_key" is set without "grpc.tcp_tls_cert": %w`, errdefs.ErrInvalidArgument)
	}
	certPEM, err := os.ReadFile(c.TCPTLSCert)
	if err != nil {
		return nil, fmt.Errorf("grpc.tcp_tls_cert: %w", err)
	}
	keyPEM, err := os.ReadFile(c.TCPTLSKey)
	if err != nil {
		return nil, fmt.Errorf("grpc.tcp_tls_key: %w", err)
	}
	// The error says which of the two it could not parse, or that they
	// do not belong together; it names neither file, so both are named.
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("grpc.tcp_tls_cert %s with grpc.tcp_tls_key %s: %w", c.TCPTLSCert, c.TCPTLSKey, err)
	}
	config := &tls.Config{
		Certificates: []tls.Certificate{pair},
		MinVersion:   tls.VersionTLS12,
	}
	if c.TCPTLSCA == "" {
		return config, nil
	}
	caPEM, err := os.ReadFile(c.TCPTLSCA)
	if err != nil {
		return nil, fmt.Errorf("grpc.tcp_tls_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("grpc.tcp_tls_ca %s: no PEM certificate in it: %w", c.TCPTLSCA, errdefs.ErrInvalidArgument)
	}
	config.ClientCAs = pool
	config.ClientAuth = tls.RequireAndVerifyClientCert
	return config, nil
}
