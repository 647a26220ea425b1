package streaming

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"

	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/errdefs"
)

// fakeRuntime answers exec with what it was asked, and forwards ports on
// the host network with PortForward.
type fakeRuntime struct{}

func (fakeRuntime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	fmt.Fprintf(out, "exec %s in %s", strings.Join(cmd, " "), id)
	if in != nil {
		io.Copy(out, in)
	}
	return nil
}

func (fakeRuntime) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	fmt.Fprintf(out, "attached to %s", id)
	return nil
}

func (fakeRuntime) PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	if podID != "pod" {
		return fmt.Errorf("unknown pod %q", podID)
	}
	return PortForward(ctx, "", port, stream)
}

func testConfig() *config.Config {
	cfg := config.Default()
	cfg.StreamServerAddress = "127.0.0.1"
	cfg.StreamServerPort = "0"
	return cfg
}

// startServer starts a server on cfg until the test ends.
func startServer(t *testing.T, cfg *config.Config) Server {
	t.Helper()
	s, err := NewServer(cfg, fakeRuntime{})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- s.Start(true) }()
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
		if err := <-started; err != nil {
			t.Errorf("Start after Stop: %v", err)
		}
	})
	return s
}

// connect upgrades a stream URL to a SPDY connection, as the kubelet's
// client does.
func connect(t *testing.T, rawURL, protocol string, tlsConfig *tls.Config) httpstream.Connection {
	t.Helper()
	rt, err := spdy.NewRoundTripperWithConfig(spdy.RoundTripperConfig{
		TLS:     tlsConfig,
		Proxier: func(*http.Request) (*url.URL, error) { return nil, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(httpstream.HeaderProtocolVersion, protocol)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := rt.NewConnection(resp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func stream(t *testing.T, conn httpstream.Connection, kv ...string) httpstream.Stream {
	t.Helper()
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	s, err := conn.CreateStream(h)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// execOver runs the exec (or attach) at rawURL with stdin and stdout
// streams and returns the output and the error stream's status.
func execOver(t *testing.T, rawURL string, tlsConfig *tls.Config, stdin string) (string, string) {
	t.Helper()
	conn := connect(t, rawURL, remotecommand.StreamProtocolV4Name, tlsConfig)
	errStream := stream(t, conn, remotecommand.StreamType, remotecommand.StreamTypeError)
	var in httpstream.Stream
	if stdin != "" {
		in = stream(t, conn, remotecommand.StreamType, remotecommand.StreamTypeStdin)
	}
	out := stream(t, conn, remotecommand.StreamType, remotecommand.StreamTypeStdout)
	if in != nil {
		in.Write([]byte(stdin))
		in.Close()
	}
	got, err := io.ReadAll(out)
	if err != nil {
		t.Fatal(err)
	}
	status, err := io.ReadAll(errStream)
	if err != nil {
		t.Fatal(err)
	}
	return string(got), string(status)
}

func TestServerExecAttachOverSPDY(t *testing.T) {
	s := startServer(t, testConfig())
	resp, err := s.GetExec(&runtimeapi.ExecRequest{ContainerId: "c1", Cmd: []string{"echo", "hi"}, Stdin: true, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(resp.Url)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "http" || u.Hostname() != "127.0.0.1" || u.Port() == "0" || u.Port() != strconv.Itoa(s.(*server).Addr().(*net.TCPAddr).Port) {
		t.Fatalf("exec URL %s does not name the bound port %v", resp.Url, s.(*server).Addr())
	}
	out, status := execOver(t, resp.Url, nil, " and stdin")
	if out != "exec echo hi in c1 and stdin" || !strings.Contains(status, "Success") {
		t.Errorf("exec: got %q, status %q", out, status)
	}

	aresp, err := s.GetAttach(&runtimeapi.AttachRequest{ContainerId: "c2", Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := execOver(t, aresp.Url, nil, ""); out != "attached to c2" {
		t.Errorf("attach: got %q", out)
	}

	// A URL is good once.
	rt, _ := spdy.NewRoundTripperWithConfig(spdy.RoundTripperConfig{Proxier: func(*http.Request) (*url.URL, error) { return nil, nil }})
	req, _ := http.NewRequest(http.MethodPost, resp.Url, nil)
	req.Header.Set(httpstream.HeaderProtocolVersion, remotecommand.StreamProtocolV4Name)
	if r, err := rt.RoundTrip(req); err == nil {
		if _, err := rt.NewConnection(r); err == nil {
			t.Error("an exec URL served twice")
		}
	}
}

func TestServerPortForwardOverSPDY(t *testing.T) {
	s := startServer(t, testConfig())
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, ln, greeter("pod"))
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	resp, err := s.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: "pod"})
	if err != nil {
		t.Fatal(err)
	}
	conn := connect(t, resp.Url, "portforward.k8s.io", nil)
	errStream := stream(t, conn, "streamType", "error", "port", port, "requestID", "0")
	data := stream(t, conn, "streamType", "data", "port", port, "requestID", "0")
	data.Write([]byte("ping\n"))
	got, _ := io.ReadAll(data)
	if string(got) != "pod ping\n" {
		t.Errorf("port forward: got %q", got)
	}
	if msg, _ := io.ReadAll(errStream); len(msg) != 0 {
		t.Errorf("port forward error stream: %q", msg)
	}
}

func TestServerTLS(t *testing.T) {
	cfg := testConfig()
	cfg.EnableTLSStreaming = true
	s := startServer(t, cfg)
	resp, err := s.GetExec(&runtimeapi.ExecRequest{ContainerId: "c", Cmd: []string{"true"}, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(resp.Url, "https://") {
		t.Fatalf("TLS exec URL %s", resp.Url)
	}
	// The self-signed certificate is for the address served on.
	var peer *x509.Certificate
	tlsConfig := &tls.Config{
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			peer = cs.PeerCertificates[0]
			return nil
		},
	}
	out, _ := execOver(t, resp.Url, tlsConfig, "")
	if out != "exec true in c" {
		t.Errorf("exec over TLS: got %q", out)
	}
	if err := peer.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("self-signed certificate: %v", err)
	}

	// Without TLS, plain HTTP is refused by a TLS server and vice versa:
	// the scheme in the URL matters.
	plain := strings.Replace(resp.Url, "https://", "http://", 1)
	r, err := http.Get(plain)
	if err == nil {
		r.Body.Close()
		if r.StatusCode < 400 {
			t.Errorf("plain HTTP to the TLS server: %s", r.Status)
		}
	}
}

func TestSelfSignedCert(t *testing.T) {
	now := time.Now()
	cert, err := selfSignedCert(now)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	for _, name := range []string{host, "127.0.0.1"} {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now}); err != nil {
			t.Errorf("certificate for %s: %v", name, err)
		}
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now.Add(366 * 24 * time.Hour)}); err == nil {
		t.Error("certificate valid after a year")
	}
	if _, ok := cert.PrivateKey.(*ecdsa.PrivateKey); !ok {
		t.Errorf("private key %T", cert.PrivateKey)
	}
}

func TestTLSSettings(t *testing.T) {
	dir := t.TempDir()
	cert, err := selfSignedCert(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	keyDER, _ := x509.MarshalECPrivateKey(cert.PrivateKey.(*ecdsa.PrivateKey))
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)

	cfg := testConfig()
	cfg.EnableTLSStreaming = true
	cfg.X509KeyPairStreaming = config.X509KeyPairStreaming{TLSCertFile: certFile, TLSKeyFile: keyFile}
	tc, err := tlsConfigOf(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if string(tc.Certificates[0].Certificate[0]) != string(cert.Certificate[0]) {
		t.Error("configured key pair not used")
	}

	for name, kp := range map[string]config.X509KeyPairStreaming{
		"cert only": {TLSCertFile: certFile},
		"key only":  {TLSKeyFile: keyFile},
	} {
		cfg.X509KeyPairStreaming = kp
		if _, err := tlsConfigOf(cfg); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v", name, err)
		}
	}
	cfg.EnableTLSStreaming = false
	cfg.X509KeyPairStreaming = config.X509KeyPairStreaming{TLSCertFile: certFile, TLSKeyFile: keyFile}
	if _, err := NewServer(cfg, fakeRuntime{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("key pair without enable_tls_streaming: %v", err)
	}
	cfg.X509KeyPairStreaming = config.X509KeyPairStreaming{}
	cfg.StreamIdleTimeout = "soon"
	if _, err := NewServer(cfg, fakeRuntime{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("stream_idle_timeout = soon: %v", err)
	}
}

func TestNewServerPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig()
	cfg.StreamServerPort = strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	if s, err := NewServer(cfg, fakeRuntime{}); err == nil {
		s.Stop()
		t.Fatal("a port in use was not an error")
	}
}

func TestDefaultRouteIP(t *testing.T) {
	ip, err := defaultRouteIP()
	if err != nil {
		t.Skipf("no default route here: %v", err)
	}
	// It is one of the host's own addresses.
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return
		}
	}
	t.Errorf("%s is not an address of this host (%v)", ip, addrs)
}
