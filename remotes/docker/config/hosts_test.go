package config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/remotes/docker"
)

const all = docker.HostCapabilityAll

// writeHostsFile writes <root>/<dir>/hosts.toml and returns the directory.
func writeHostsFile(t *testing.T, root, dir, content string) string {
	t.Helper()
	d := filepath.Join(root, dir)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

func hostsFor(t *testing.T, root, host string) []docker.RegistryHost {
	t.Helper()
	hosts, err := ConfigureHosts(context.Background(), HostOptions{HostDir: HostDirFromRoot(root)})(host)
	if err != nil {
		t.Fatal(err)
	}
	return hosts
}

// endpoint is what the registry client uses of a host, but its client.
type endpoint struct {
	URL  string
	Caps docker.HostCapabilities
}

func endpoints(hosts []docker.RegistryHost) []endpoint {
	var out []endpoint
	for _, h := range hosts {
		out = append(out, endpoint{h.Scheme + "://" + h.Host + h.Path, h.Capabilities})
	}
	return out
}

func checkEndpoints(t *testing.T, hosts []docker.RegistryHost, want ...endpoint) {
	t.Helper()
	got := endpoints(hosts)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("hosts:\n got %v\nwant %v", got, want)
	}
	for i, h := range hosts {
		if h.Client == nil {
			t.Errorf("host %d has no client", i)
		}
	}
}

func TestDefaultServer(t *testing.T) {
	root := t.TempDir() // empty: no host has a configuration
	for _, tc := range []struct {
		host, scheme string
		want         string
	}{
		{"docker.io", "", "https://registry-1.docker.io/v2"},
		{"docker.io", "http", "https://registry-1.docker.io/v2"},
		{"registry.example.com", "", "https://registry.example.com/v2"},
		{"registry.example.com:5000", "http", "http://registry.example.com:5000/v2"},
		// Loopback: https, trying http on a port that is not 443.
		{"localhost", "", "https://localhost/v2"},
		{"localhost:443", "", "https://localhost:443/v2"},
		{"localhost:5000", "", "https://localhost:5000/v2"},
		{"127.0.0.1:5000", "", "https://127.0.0.1:5000/v2"},
		{"localhost:80", "", "http://localhost:80/v2"},
		{"localhost:5000", "http", "http://localhost:5000/v2"},
	} {
		hosts, err := ConfigureHosts(context.Background(), HostOptions{
			HostDir:       HostDirFromRoot(root),
			DefaultScheme: tc.scheme,
		})(tc.host)
		if err != nil {
			t.Fatalf("%s: %v", tc.host, err)
		}
		t.Run(tc.host+"_"+tc.scheme, func(t *testing.T) {
			checkEndpoints(t, hosts, endpoint{tc.want, all})
		})
	}
}

// A registry on a loopback port answers through the default client
// whether it speaks plain HTTP or TLS with a certificate nobody trusts.
func TestLoopbackFallback(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer plain.Close()
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer secure.Close()

	for name, srv := range map[string]*httptest.Server{"plain": plain, "tls": secure} {
		host := srv.Listener.Addr().String() // 127.0.0.1:port
		hosts := hostsFor(t, t.TempDir(), host)
		if len(hosts) != 1 {
			t.Fatalf("%s: %d hosts", name, len(hosts))
		}
		resp, err := hosts[0].Client.Get(hosts[0].Scheme + "://" + host + "/v2/")
		if err != nil {
			t.Fatalf("%s server: %v", name, err)
		}
		resp.Body.Close()
		if (resp.TLS != nil) != (name == "tls") {
			t.Errorf("%s server answered with TLS %v", name, resp.TLS != nil)
		}
	}
}

// An http server tries https first once TLS is configured.
func TestHTTPServerWithDefaultTLS(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	root := t.TempDir()
	writeHostsFile(t, root, "registry.example.com", fmt.Sprintf("server = %q\n", srv.URL))
	for _, defaultTLS := range []*tls.Config{nil, {}} {
		hosts, err := ConfigureHosts(context.Background(), HostOptions{
			HostDir:    HostDirFromRoot(root),
			DefaultTLS: defaultTLS,
		})("registry.example.com")
		if err != nil {
			t.Fatal(err)
		}
		want := "http"
		if defaultTLS != nil {
			want = "https"
		}
		if hosts[0].Scheme != want {
			t.Errorf("DefaultTLS %v: scheme %s, want %s", defaultTLS != nil, hosts[0].Scheme, want)
		}
		if err := get(hosts); err != nil {
			t.Errorf("DefaultTLS %v: %v", defaultTLS != nil, err)
		}
	}
}

func TestMirrorsInFileOrderThenServer(t *testing.T) {
	root := t.TempDir()
	writeHostsFile(t, root, "docker.io", `
server = "https://registry-1.docker.io"
capabilities = ["pull", "resolve", "push"]

[host."https://z-mirror.example.com"]
  capabilities = ["pull"]
  [host."https://z-mirror.example.com".header]
    x-custom = "z"

[host."http://a-mirror.example.com:5000"]
  capabilities = ["Pull", "resolve"]

[host."b-mirror.example.com"]
`)
	hosts := hostsFor(t, root, "docker.io")
	checkEndpoints(t, hosts,
		endpoint{"https://z-mirror.example.com/v2", docker.HostCapabilityPull},
		endpoint{"http://a-mirror.example.com:5000/v2", docker.HostCapabilityPull | docker.HostCapabilityResolve},
		endpoint{"https://b-mirror.example.com/v2", all}, // as containerd: no list, every capability
		endpoint{"https://registry-1.docker.io/v2", docker.HostCapabilityPull | docker.HostCapabilityResolve | docker.HostCapabilityPush},
	)
	if got := hosts[0].Header.Get("x-custom"); got != "z" {
		t.Errorf("mirror header x-custom = %q", got)
	}
}

// Without a server in the file, the default server comes last.
func TestMirrorsThenDefaultServer(t *testing.T) {
	root := t.TempDir()
	writeHostsFile(t, root, "registry.example.com", `
[host."https://mirror.example.com"]
  capabilities = ["pull", "resolve"]
`)
	checkEndpoints(t, hostsFor(t, root, "registry.example.com"),
		endpoint{"https://mirror.example.com/v2", docker.HostCapabilityPull | docker.HostCapabilityResolve},
		endpoint{"https://registry.example.com/v2", all},
	)
}

func TestServerPath(t *testing.T) {
	for _, tc := range []struct{ config, want string }{
		{`server = "registry.example.com"`, "https://registry.example.com/v2"},
		{`server = "http://registry.example.com:5000"`, "http://registry.example.com:5000/v2"},
		{`server = "https://registry.example.com/v2"`, "https://registry.example.com/v2"},
		{`server = "https://registry.example.com/sub/"`, "https://registry.example.com/sub/v2"},
		{"server = \"https://registry.example.com/api/x\"\noverride_path = true", "https://registry.example.com/api/x"},
		{"server = \"https://registry.example.com\"\noverride_path = true", "https://registry.example.com"},
		{"[host.\"https://m.example.com/mirror\"]\noverride_path = true", "https://m.example.com/mirror"},
	} {
		root := t.TempDir()
		writeHostsFile(t, root, "registry.example.com", tc.config)
		if got := endpoints(hostsFor(t, root, "registry.example.com"))[0].URL; got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.config, got, tc.want)
		}
	}
}

func TestHeader(t *testing.T) {
	root := t.TempDir()
	writeHostsFile(t, root, "registry.example.com", `
server = "https://registry.example.com"
[header]
  x-one = "1"
  x-list = ["a", "b"]
`)
	h := hostsFor(t, root, "registry.example.com")[0].Header
	if got := h.Values("X-One"); fmt.Sprint(got) != "[1]" {
		t.Errorf("x-one = %v", got)
	}
	if got := h.Values("X-List"); fmt.Sprint(got) != "[a b]" {
		t.Errorf("x-list = %v", got)
	}
}

func TestHostDirFromRoot(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"both.example.com:5000", "both.example.com_5000_", "colon.example.com:5000", "plain.example.com"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	find := HostDirFromRoot(root)
	for host, want := range map[string]string{
		"both.example.com:5000":  "both.example.com_5000_", // host_port_ first
		"colon.example.com:5000": "colon.example.com:5000",
		"plain.example.com":      "plain.example.com",
	} {
		if got, err := find(host); err != nil || got != filepath.Join(root, want) {
			t.Errorf("%s: %q, %v; want %s", host, got, err, want)
		}
	}
	if got, err := find("other.example.com"); !errdefs.IsNotFound(err) {
		t.Errorf("no directory: %q, %v; want not found", got, err)
	}

	if err := os.Mkdir(filepath.Join(root, "_default"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := find("other.example.com:5000"); err != nil || got != filepath.Join(root, "_default") {
		t.Errorf("fallback: %q, %v; want _default", got, err)
	}
}

// _default's hosts.toml applies to hosts without their own directory,
// with no server: each its own.
func TestDefaultDirectory(t *testing.T) {
	root := t.TempDir()
	writeHostsFile(t, root, "_default", `
[host."https://mirror.example.com"]
  capabilities = ["pull"]
`)
	writeHostsFile(t, root, "own.example.com_5000_", `server = "https://elsewhere.example.com"`)
	checkEndpoints(t, hostsFor(t, root, "quay.io"),
		endpoint{"https://mirror.example.com/v2", docker.HostCapabilityPull},
		endpoint{"https://quay.io/v2", all},
	)
	checkEndpoints(t, hostsFor(t, root, "own.example.com:5000"),
		endpoint{"https://elsewhere.example.com/v2", all},
	)
}

// tlsServer starts a server on 127.0.0.1 with a certificate from ca;
// clientCA, if set, is what client certificates must be signed by.
func tlsServer(t *testing.T, dir string, ca, clientCA *testutil.KeyPair) string {
	t.Helper()
	kp := testutil.Issue(t, dir, "server", ca, net.IPv4(127, 0, 0, 1))
	cert, err := tls.LoadX509KeyPair(kp.CertFile, kp.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	if clientCA != nil {
		pool := x509.NewCertPool()
		pool.AddCert(clientCA.Cert)
		srv.TLS.ClientAuth, srv.TLS.ClientCAs = tls.RequireAndVerifyClientCert, pool
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// get requests the API root of each host until one answers.
func get(hosts []docker.RegistryHost) error {
	var errs []error
	for _, h := range hosts {
		resp, err := h.Client.Get(h.Scheme + "://" + h.Host + h.Path + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func isUnknownAuthority(err error) bool {
	var ua x509.UnknownAuthorityError
	return errors.As(err, &ua)
}

func TestCA(t *testing.T) {
	certs := t.TempDir()
	ca := testutil.Issue(t, certs, "ca", nil, nil)
	other := testutil.Issue(t, certs, "other-ca", nil, nil)
	addr := tlsServer(t, certs, ca, nil)
	host := "registry.example.com"

	for _, tc := range []struct {
		name, ca string
		trusted  bool
	}{
		{"none", ``, false},
		{"relative", `ca = "ca.pem"`, true},
		{"absolute", fmt.Sprintf("ca = %q", ca.CertFile), true},
		{"list", `ca = ["other.pem", "ca.pem"]`, true},
		{"other", `ca = "other.pem"`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := writeHostsFile(t, root, host, fmt.Sprintf("server = %q\n%s\n", "https://"+addr, tc.ca))
			copyFile(t, ca.CertFile, filepath.Join(dir, "ca.pem"))
			copyFile(t, other.CertFile, filepath.Join(dir, "other.pem"))
			err := get(hostsFor(t, root, host))
			if tc.trusted && err != nil {
				t.Fatalf("want the CA trusted: %v", err)
			}
			if !tc.trusted && !isUnknownAuthority(err) {
				t.Fatalf("want an unknown authority error, got %v", err)
			}
		})
	}
}

// A mirror's CA is that mirror's only: the server does not trust it.
func TestCAPerHost(t *testing.T) {
	certs := t.TempDir()
	ca := testutil.Issue(t, certs, "ca", nil, nil)
	addr := tlsServer(t, certs, ca, nil)
	root := t.TempDir()
	writeHostsFile(t, root, "registry.example.com", fmt.Sprintf(`
server = "https://%[1]s"
[host."https://%[1]s"]
  ca = %[2]q
`, addr, ca.CertFile))
	hosts := hostsFor(t, root, "registry.example.com")
	if err := get(hosts[:1]); err != nil {
		t.Fatalf("mirror with the CA: %v", err)
	}
	if err := get(hosts[1:]); !isUnknownAuthority(err) {
		t.Fatalf("server without the CA: want unknown authority, got %v", err)
	}
}

func TestClientCertificates(t *testing.T) {
	certs := t.TempDir()
	ca := testutil.Issue(t, certs, "ca", nil, nil)
	addr := tlsServer(t, certs, ca, ca)
	host := "registry.example.com"

	for _, tc := range []struct {
		name, client string
		accepted     bool
	}{
		{"none", ``, false},
		{"pair", `client = [["client.pem", "client-key.pem"]]`, true},
		{"combined file", `client = "combined.pem"`, true},
		{"list of files", `client = ["combined.pem"]`, true},
		{"pair with key in the certificate file", `client = [["combined.pem", ""]]`, true},
		{"untrusted", `client = [["stranger.pem", "stranger-key.pem"]]`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := writeHostsFile(t, root, host, fmt.Sprintf("server = %q\nca = %q\n%s\n", "https://"+addr, ca.CertFile, tc.client))
			client := testutil.Issue(t, dir, "client", ca, nil)
			testutil.Issue(t, dir, "stranger", nil, nil)
			combined := append(readFile(t, client.CertFile), readFile(t, client.KeyFile)...)
			if err := os.WriteFile(filepath.Join(dir, "combined.pem"), combined, 0o600); err != nil {
				t.Fatal(err)
			}
			err := get(hostsFor(t, root, host))
			if tc.accepted != (err == nil) {
				t.Fatalf("accepted: want %v, got error %v", tc.accepted, err)
			}
		})
	}
}

func TestSkipVerify(t *testing.T) {
	certs := t.TempDir()
	ca := testutil.Issue(t, certs, "ca", nil, nil)
	addr := tlsServer(t, certs, ca, nil)
	for _, skip := range []bool{true, false} {
		root := t.TempDir()
		writeHostsFile(t, root, "registry.example.com", fmt.Sprintf("server = %q\nskip_verify = %v\n", "https://"+addr, skip))
		err := get(hostsFor(t, root, "registry.example.com"))
		if skip && err != nil {
			t.Errorf("skip_verify = true: %v", err)
		}
		if !skip && !isUnknownAuthority(err) {
			t.Errorf("skip_verify = false: want unknown authority, got %v", err)
		}
	}
}

// Without hosts.toml, Docker's layout: *.crt CAs, *.cert/*.key clients.
func TestDockerCertFiles(t *testing.T) {
	certs := t.TempDir()
	ca := testutil.Issue(t, certs, "ca", nil, nil)
	addr := tlsServer(t, certs, ca, ca)
	root := t.TempDir()
	dir := filepath.Join(root, strings.ReplaceAll(addr, ":", "_")+"_")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A loopback host is not verified by default: what tells the files
	// were read is the client certificate, and a broken CA.
	if err := get(hostsFor(t, root, addr)); err == nil {
		t.Fatal("empty directory: the server took a client without a certificate")
	}
	if err := os.WriteFile(filepath.Join(dir, "broken.crt"), []byte("not PEM"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ConfigureHosts(context.Background(), HostOptions{HostDir: HostDirFromRoot(root)})(addr)
	if want := dir + " for " + addr + ": certificate files: ca: " + filepath.Join(dir, "broken.crt"); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("broken .crt: got %v, want %s...", err, want)
	}
	if err := os.Remove(filepath.Join(dir, "broken.crt")); err != nil {
		t.Fatal(err)
	}

	copyFile(t, ca.CertFile, filepath.Join(dir, "ca.crt"))
	client := testutil.Issue(t, certs, "client", ca, nil)
	copyFile(t, client.CertFile, filepath.Join(dir, "client.cert"))
	copyFile(t, client.KeyFile, filepath.Join(dir, "client.key"))
	hosts := hostsFor(t, root, addr)
	checkEndpoints(t, hosts, endpoint{"https://" + addr + "/v2", all})
	if err := get(hosts); err != nil {
		t.Fatal(err)
	}
}

// DefaultTLS is where every host starts; a host's CA is added to a copy
// of its roots, never to the caller's pool.
func TestDefaultTLS(t *testing.T) {
	certs := t.TempDir()
	ca := testutil.Issue(t, certs, "ca", nil, nil)
	other := testutil.Issue(t, certs, "other", nil, nil)
	addr := tlsServer(t, certs, ca, nil)
	otherAddr := tlsServer(t, t.TempDir(), other, nil)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	defaultTLS := &tls.Config{RootCAs: pool}

	root := t.TempDir()
	writeHostsFile(t, root, "registry.example.com", fmt.Sprintf(`
server = "https://%s"
[host."https://%s"]
  ca = %q
`, addr, otherAddr, other.CertFile))
	hosts, err := ConfigureHosts(context.Background(), HostOptions{HostDir: HostDirFromRoot(root), DefaultTLS: defaultTLS})("registry.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := get(hosts[1:]); err != nil {
		t.Errorf("server trusted through DefaultTLS: %v", err)
	}
	if err := get(hosts[:1]); err != nil {
		t.Errorf("mirror trusted through its ca: %v", err)
	}
	if !pool.Equal(func() *x509.CertPool { p := x509.NewCertPool(); p.AddCert(ca.Cert); return p }()) {
		t.Error("the DefaultTLS pool was changed")
	}
}

func TestUpdateClient(t *testing.T) {
	root := t.TempDir()
	writeHostsFile(t, root, "registry.example.com", `
[host."https://mirror.example.com"]
  skip_verify = true
`)
	updated := map[*http.Client]bool{}
	hosts, err := ConfigureHosts(context.Background(), HostOptions{
		HostDir:      HostDirFromRoot(root),
		UpdateClient: func(c *http.Client) error { updated[c] = true; return nil },
	})("registry.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if hosts[0].Client == hosts[1].Client {
		t.Error("the mirror with skip_verify shares the server's client")
	}
	for _, h := range hosts {
		if !updated[h.Client] {
			t.Errorf("client of %s not given to UpdateClient", h.Host)
		}
	}

	_, err = ConfigureHosts(context.Background(), HostOptions{
		UpdateClient: func(*http.Client) error { return errors.New("no thanks") },
	})("registry.example.com")
	if err == nil || !strings.Contains(err.Error(), "no thanks") {
		t.Errorf("UpdateClient's error: got %v", err)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct{ name, config, want string }{
		{"malformed", "server = \"https://r.example.com\"\n[host.\"https://m\"\n", "toml: line 3"},
		{"unknown capability", "[host.\"https://m.example.com\"]\ncapabilities = [\"pull\", \"pul\"]\n",
			`host "https://m.example.com": capabilities: unknown capability "pul"`},
		{"server capability", "server = \"https://r.example.com\"\ncapabilities = [\"delete\"]\n",
			`server "https://r.example.com": capabilities: unknown capability "delete"`},
		{"missing ca", "[host.\"https://x\"]\nca = \"missing.pem\"\n", `host "https://x": ca: open `},
		{"ca not PEM", "ca = \"hosts.toml\"\n", `server: ca: `},
		{"ca type", "ca = 5\n", "ca: want a path or a list of paths"},
		{"ca list type", "ca = [\"a.pem\", 5]\n", "ca: 5 is not a string"},
		{"missing client", "client = \"missing.pem\"\n", "server: client: open "},
		{"client triple", "client = [[\"a\", \"b\", \"c\"]]\n", "client: want [certificate, key]"},
		{"client type", "client = true\n", "client: want a path or a list"},
		{"header type", "[header]\nx-n = 1\n", `header "x-n": want a string or a list of strings`},
		{"bad url", "server = \"https://r.example.com:port\"\n", `server "https://r.example.com:port": parse`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := writeHostsFile(t, root, "docker.io", tc.config)
			_, err := ConfigureHosts(context.Background(), HostOptions{HostDir: HostDirFromRoot(root)})("docker.io")
			prefix := filepath.Join(dir, "hosts.toml") + " for docker.io: "
			if err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant %q ... %q", err, prefix, tc.want)
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.WriteFile(to, readFile(t, from), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
