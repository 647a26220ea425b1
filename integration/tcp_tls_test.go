//go:build integration

package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	versionapi "github.com/llitfkitfk/containerd/api/services/version/v1"
	"github.com/llitfkitfk/containerd/internal/testutil"
)

// tlsCredentials trusts ca for the server and, if client is set, shows it.
func tlsCredentials(ca, client *testutil.KeyPair) credentials.TransportCredentials {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	config := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if client != nil {
		config.Certificates = []tls.Certificate{{Certificate: [][]byte{client.Cert.Raw}, PrivateKey: client.Key}}
	}
	return credentials.NewTLS(config)
}

// callVersion calls Version on the TCP listener at addr and returns the
// gRPC status code of the answer. No service registers on the TCP listener
// (in containerd only CRI does), so a call that gets through is answered
// Unimplemented by the daemon's gRPC server; a connection refused at the
// TLS handshake ends the call Unavailable.
func callVersion(t *testing.T, addr string, creds credentials.TransportCredentials) codes.Code {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = versionapi.NewVersionClient(conn).Version(ctx, &emptypb.Empty{})
	return status.Code(err)
}

func freeTCPAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// tcpDaemon returns, unstarted, a daemon whose [grpc] section also holds
// settings, which come in an imported file: the daemon's own config file
// has its [grpc] table already.
func tcpDaemon(t *testing.T, settings string) *daemon {
	t.Helper()
	d := newDaemon(t, "")
	if err := os.WriteFile(filepath.Join(d.dir, "tcp.toml"), []byte("[grpc]\n"+settings), 0o644); err != nil {
		t.Fatal(err)
	}
	d.writeConfig("imports = [\"tcp.toml\"]\n")
	return d
}

func TestTCPListenerTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.Issue(t, dir, "ca", nil, nil)
	server := testutil.Issue(t, dir, "server", ca, net.ParseIP("127.0.0.1"))
	client := testutil.Issue(t, dir, "client", ca, nil)
	otherCA := testutil.Issue(t, dir, "other-ca", nil, nil)
	stranger := testutil.Issue(t, dir, "stranger", otherCA, nil)

	t.Run("client certificates", func(t *testing.T) {
		addr := freeTCPAddress(t)
		d := tcpDaemon(t, fmt.Sprintf("  tcp_address = %q\n  tcp_tls_cert = %q\n  tcp_tls_key = %q\n  tcp_tls_ca = %q\n",
			addr, server.CertFile, server.KeyFile, ca.CertFile))
		d.start()
		if code := callVersion(t, addr, tlsCredentials(ca, client)); code != codes.Unimplemented {
			t.Errorf("client with a certificate of the CA: %v, want its call answered (Unimplemented)\n%s", code, d.log)
		}
		for name, creds := range map[string]credentials.TransportCredentials{
			"no client certificate":       tlsCredentials(ca, nil),
			"a certificate of another CA": tlsCredentials(ca, stranger),
			"plaintext":                   insecure.NewCredentials(),
		} {
			if code := callVersion(t, addr, creds); code != codes.Unavailable {
				t.Errorf("client with %s: %v, want the connection refused (Unavailable)", name, code)
			}
		}
	})

	t.Run("no CA", func(t *testing.T) {
		addr := freeTCPAddress(t)
		d := tcpDaemon(t, fmt.Sprintf("  tcp_address = %q\n  tcp_tls_cert = %q\n  tcp_tls_key = %q\n",
			addr, server.CertFile, server.KeyFile))
		d.start()
		if code := callVersion(t, addr, tlsCredentials(ca, nil)); code != codes.Unimplemented {
			t.Errorf("TLS client: %v, want its call answered (Unimplemented)\n%s", code, d.log)
		}
		if code := callVersion(t, addr, insecure.NewCredentials()); code != codes.Unavailable {
			t.Errorf("plaintext client: %v, want the connection refused (Unavailable)", code)
		}
	})

	// A daemon whose TLS files are bad does not start, names them, and
	// says so before it loads any plugin.
	missing := filepath.Join(dir, "missing-key.pem") // root reads any file, so unreadable means missing here
	for name, tc := range map[string]struct {
		cert, key string
		want      []string
	}{
		"unreadable key":             {server.CertFile, missing, []string{missing}},
		"key of another certificate": {server.CertFile, client.KeyFile, []string{server.CertFile, client.KeyFile, "does not match"}},
	} {
		t.Run(name, func(t *testing.T) {
			d := tcpDaemon(t, fmt.Sprintf("  tcp_address = %q\n  tcp_tls_cert = %q\n  tcp_tls_key = %q\n",
				freeTCPAddress(t), tc.cert, tc.key))
			d.startNoWait()
			if code := d.wait(30 * time.Second); code == 0 {
				t.Fatalf("daemon exited 0\n%s", d.log)
			}
			for _, want := range tc.want {
				if !strings.Contains(d.log.String(), want) {
					t.Errorf("error does not name %q:\n%s", want, d.log)
				}
			}
			if strings.Contains(d.log.String(), "loading plugin") {
				t.Errorf("daemon loaded plugins before it gave up:\n%s", d.log)
			}
		})
	}
}
