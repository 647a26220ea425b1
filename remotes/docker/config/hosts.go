// Package config reads registry host configuration the way containerd
// does: one directory per registry host under a root (by default
// /etc/containerd/certs.d), holding a hosts.toml, or Docker-style
// certificate files.
package config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/remotes/docker"
)

// HostOptions tells ConfigureHosts where to find host directories and
// how to build the hosts' clients.
type HostOptions struct {
	// HostDir returns the directory holding the configuration of a
	// registry host; "" or an errdefs.ErrNotFound error means there is
	// none. Nil: no host has a configuration.
	HostDir func(host string) (string, error)
	// Credentials returns the username and secret for a host; every
	// host ConfigureHosts returns gets an authorizer asking it.
	Credentials func(host string) (string, string, error)
	// AuthorizerOpts are given to that authorizer too (token request
	// headers, for instance).
	AuthorizerOpts []docker.AuthorizerOpt
	// DefaultTLS is the TLS configuration every host starts from.
	// Setting it also makes http hosts try https first.
	DefaultTLS *tls.Config
	// DefaultScheme is the scheme of a host with no configured server:
	// "" means https, except for loopback hosts (see ConfigureHosts).
	DefaultScheme string
	// UpdateClient, if set, is called on every client made.
	UpdateClient func(*http.Client) error
}

// ConfigureHosts returns the hosts to try for a registry host: those of
// [host."…"] tables of its hosts.toml in file order, then its server.
//
// With no configured server, the server is https://registry-1.docker.io
// for docker.io and <DefaultScheme or https>://<host> for others. A
// loopback host with no DefaultScheme is https without certificate
// verification, except that on port 80 it is plain http, and on ports
// other than 443 https is tried first, falling back to plain http.
//
// A host configured as http but given TLS settings (its own, or
// DefaultTLS) also tries https first, unless on port 80.
func ConfigureHosts(ctx context.Context, options HostOptions) docker.RegistryHosts {
	return func(host string) ([]docker.RegistryHost, error) {
		var hosts []hostConfig
		if options.HostDir != nil {
			dir, err := options.HostDir(host)
			if err != nil && !errdefs.IsNotFound(err) {
				return nil, err
			}
			if dir != "" {
				log.G(ctx).WithField("dir", dir).Debug("loading registry host directory")
				var source string
				hosts, source, err = loadHostDir(dir)
				if err == nil {
					err = loadTLS(hosts)
				}
				if err != nil {
					return nil, fmt.Errorf("%s for %s: %w", source, host, err)
				}
			}
		}
		if hosts == nil {
			hosts = []hostConfig{{}}
		}
		if server := &hosts[len(hosts)-1]; server.host == "" {
			defaultServer(server, host, options.DefaultScheme)
		}
		return makeHosts(ctx, hosts, options)
	}
}

// hostConfig is one host as configured, before clients are made.
type hostConfig struct {
	label              string // where in the file: host "…" or server
	scheme, host, path string
	capabilities       docker.HostCapabilities
	header             http.Header

	caCerts     []string    // absolute paths
	clientPairs [][2]string // certificate, key ("": in the certificate file)
	skipVerify  *bool

	roots        []byte // contents of caCerts, read by loadTLS
	certificates []tls.Certificate
}

// hasTLS tells whether the host's TLS settings differ from the default.
func (h *hostConfig) hasTLS() bool {
	return h.caCerts != nil || h.clientPairs != nil || h.skipVerify != nil
}

func defaultServer(server *hostConfig, host, defaultScheme string) {
	server.host, server.scheme = host, "https"
	switch {
	case host == "docker.io":
		server.host = "registry-1.docker.io"
	case defaultScheme != "":
		server.scheme = defaultScheme
	case docker.IsLocalhost(host):
		_, port, _ := net.SplitHostPort(host)
		if port != "" && port != "443" {
			server.scheme = "http" // made https-with-fallback by makeHosts
		}
		if port != "80" {
			skip := true
			server.skipVerify = &skip
		}
	}
	server.path = "/v2"
	server.capabilities = docker.HostCapabilityAll
}

func makeHosts(ctx context.Context, hosts []hostConfig, options HostOptions) ([]docker.RegistryHost, error) {
	tlsConfig := options.DefaultTLS
	if tlsConfig == nil {
		tlsConfig = &tls.Config{}
	}
	transport := docker.DefaultHTTPTransport(tlsConfig)
	newClient := func(rt http.RoundTripper) (*http.Client, error) {
		c := &http.Client{Transport: rt}
		if options.UpdateClient != nil {
			if err := options.UpdateClient(c); err != nil {
				return nil, err
			}
		}
		return c, nil
	}
	shared, err := newClient(transport)
	if err != nil {
		return nil, err
	}

	// One authorizer for all the hosts, so tokens are cached per host
	// (by request host) for as long as the caller keeps these hosts.
	authOpts := []docker.AuthorizerOpt{docker.WithAuthClient(shared)}
	if options.Credentials != nil {
		authOpts = append(authOpts, docker.WithAuthCreds(options.Credentials))
	}
	authOpts = append(authOpts, options.AuthorizerOpts...)
	authorizer := docker.NewDockerAuthorizer(authOpts...)

	out := make([]docker.RegistryHost, len(hosts))
	for i, h := range hosts {
		client := shared
		var rt http.RoundTripper = transport
		if h.hasTLS() {
			tr := transport.Clone()
			if err := h.applyTLS(tr.TLSClientConfig); err != nil {
				return nil, err
			}
			rt = tr
		}
		// An http host that was given TLS settings tries https first,
		// unless port 80 says it is plain HTTP.
		if _, port, _ := net.SplitHostPort(h.host); h.scheme == "http" && port != "80" &&
			(options.DefaultTLS != nil || h.hasTLS()) {
			log.G(ctx).WithField("host", h.host).Debug("http host with a TLS configuration: trying https first")
			h.scheme = "https"
			rt = docker.NewHTTPFallback(rt)
		}
		if rt != http.RoundTripper(transport) {
			if client, err = newClient(rt); err != nil {
				return nil, err
			}
		}
		out[i] = docker.RegistryHost{
			Client:       client,
			Authorizer:   authorizer,
			Host:         h.host,
			Scheme:       h.scheme,
			Path:         h.path,
			Capabilities: h.capabilities,
			Header:       h.header,
		}
	}
	return out, nil
}

// loadTLS reads the CA and client certificate files of hosts.
func loadTLS(hosts []hostConfig) error {
	for i := range hosts {
		h := &hosts[i]
		for _, f := range h.caCerts {
			data, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("%s: ca: %w", h.label, err)
			}
			if !x509.NewCertPool().AppendCertsFromPEM(data) {
				return fmt.Errorf("%s: ca: %s: no PEM certificate", h.label, f)
			}
			h.roots = append(append(h.roots, data...), '\n')
		}
		for _, pair := range h.clientPairs {
			certPEM, err := os.ReadFile(pair[0])
			if err != nil {
				return fmt.Errorf("%s: client: %w", h.label, err)
			}
			keyPEM := certPEM
			if pair[1] != "" {
				if keyPEM, err = os.ReadFile(pair[1]); err != nil {
					return fmt.Errorf("%s: client: %w", h.label, err)
				}
			}
			cert, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				return fmt.Errorf("%s: client: %s: %w", h.label, pair[0], err)
			}
			h.certificates = append(h.certificates, cert)
		}
	}
	return nil
}

// applyTLS adds the host's CAs (to the system's or cfg's roots), client
// certificates and skip_verify to cfg.
func (h *hostConfig) applyTLS(cfg *tls.Config) error {
	if h.skipVerify != nil {
		cfg.InsecureSkipVerify = *h.skipVerify
	}
	if h.roots != nil {
		pool, err := x509.SystemCertPool()
		if cfg.RootCAs != nil {
			pool, err = cfg.RootCAs.Clone(), nil // never add to the caller's pool
		}
		if err != nil {
			return fmt.Errorf("%s: ca: system roots: %w", h.label, err)
		}
		pool.AppendCertsFromPEM(h.roots)
		cfg.RootCAs = pool
	}
	cfg.Certificates = append(cfg.Certificates[:len(cfg.Certificates):len(cfg.Certificates)], h.certificates...)
	return nil
}

// HostDirFromRoot finds a host's directory under root: <root>/<host>, for
// "host:port" first <root>/host_port_, then <root>/_default.
func HostDirFromRoot(root string) func(string) (string, error) {
	return func(host string) (string, error) {
		var names []string
		if i := strings.LastIndex(host, ":"); i > 0 {
			names = append(names, host[:i]+"_"+host[i+1:]+"_")
		}
		names = append(names, host, "_default")
		for _, name := range names {
			dir := filepath.Join(root, name)
			if _, err := os.Stat(dir); err == nil {
				return dir, nil
			} else if !os.IsNotExist(err) {
				return "", err
			}
		}
		return "", errdefs.ErrNotFound
	}
}

// loadHostDir reads dir/hosts.toml or, without one, Docker's certificate
// files in dir. source names what was read, for errors.
func loadHostDir(dir string) (hosts []hostConfig, source string, err error) {
	source = filepath.Join(dir, "hosts.toml")
	b, err := os.ReadFile(source)
	if os.IsNotExist(err) || (err == nil && len(b) == 0) {
		hosts, err = loadCertFiles(dir)
		return hosts, dir, err
	}
	if err != nil {
		return nil, source, err
	}
	hosts, err = parseHostsFile(dir, b)
	return hosts, source, err
}

// hostFileConfig is the part of hosts.toml common to the server (at the
// top level) and the [host."…"] tables.
type hostFileConfig struct {
	Capabilities []string `toml:"capabilities"`
	// CA is a path or a list of paths.
	CA any `toml:"ca"`
	// Client is a path (certificate and key in one file), or a list of
	// paths or of [certificate, key] pairs.
	Client       any            `toml:"client"`
	SkipVerify   *bool          `toml:"skip_verify"`
	Header       map[string]any `toml:"header"`
	OverridePath bool           `toml:"override_path"`
}

func parseHostsFile(dir string, b []byte) ([]hostConfig, error) {
	var file struct {
		hostFileConfig
		Server string                    `toml:"server"`
		Hosts  map[string]hostFileConfig `toml:"host"`
	}
	md, err := toml.Decode(string(b), &file)
	if err != nil {
		return nil, err
	}

	var hosts []hostConfig
	seen := map[string]bool{}
	for _, key := range md.Keys() { // keys in file order
		if len(key) != 2 || key[0] != "host" || seen[key[1]] {
			continue
		}
		seen[key[1]] = true
		h, err := parseHost(fmt.Sprintf("host %q", key[1]), key[1], dir, file.Hosts[key[1]])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", h.label, err)
		}
		hosts = append(hosts, h)
	}

	label := "server"
	if file.Server != "" {
		label = fmt.Sprintf("server %q", file.Server)
	}
	server, err := parseHost(label, file.Server, dir, file.hostFileConfig)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", server.label, err)
	}
	return append(hosts, server), nil
}

// parseHost reads one host's settings; with server "" the location is
// left empty, for ConfigureHosts to fill in. label names the host in errors.
func parseHost(label, server, dir string, c hostFileConfig) (hostConfig, error) {
	h := hostConfig{label: label}
	if server != "" {
		if !strings.HasPrefix(server, "http") {
			server = "https://" + server
		}
		u, err := url.Parse(server)
		if err != nil {
			return h, err
		}
		h.scheme, h.host = u.Scheme, u.Host
		h.path = u.Path
		if h.path != "" {
			h.path = path.Clean(h.path)
		}
		if !c.OverridePath && !strings.HasSuffix(h.path, "/v2") {
			h.path += "/v2"
		}
	}

	h.capabilities = docker.HostCapabilityAll
	if len(c.Capabilities) > 0 {
		h.capabilities = 0
		for _, name := range c.Capabilities {
			switch strings.ToLower(name) {
			case "pull":
				h.capabilities |= docker.HostCapabilityPull
			case "resolve":
				h.capabilities |= docker.HostCapabilityResolve
			case "push":
				h.capabilities |= docker.HostCapabilityPush
			case "referrers":
				h.capabilities |= docker.HostCapabilityReferrers
			default:
				return h, fmt.Errorf("capabilities: unknown capability %q (want pull, resolve, push or referrers)", name)
			}
		}
	}

	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	var err error
	switch ca := c.CA.(type) {
	case nil:
	case string:
		h.caCerts = []string{abs(ca)}
	case []any:
		if h.caCerts, err = stringList(ca, abs); err != nil {
			return h, fmt.Errorf("ca: %w", err)
		}
	default:
		return h, fmt.Errorf("ca: want a path or a list of paths, not %T", ca)
	}

	switch client := c.Client.(type) {
	case nil:
	case string:
		h.clientPairs = [][2]string{{abs(client), ""}}
	case []any:
		for _, item := range client {
			switch item := item.(type) {
			case string:
				h.clientPairs = append(h.clientPairs, [2]string{abs(item), ""})
			case []any:
				pair, err := stringList(item, abs) // key "": in the certificate file
				if err != nil || len(pair) != 2 {
					return h, fmt.Errorf("client: want [certificate, key], not %v", item)
				}
				h.clientPairs = append(h.clientPairs, [2]string{pair[0], pair[1]})
			default:
				return h, fmt.Errorf("client: want a path or a [certificate, key] pair, not %T", item)
			}
		}
	default:
		return h, fmt.Errorf("client: want a path or a list, not %T", client)
	}

	h.skipVerify = c.SkipVerify

	if c.Header != nil {
		h.header = http.Header{}
		for key, value := range c.Header {
			canonical := http.CanonicalHeaderKey(key) // as Header.Get expects
			switch value := value.(type) {
			case string:
				h.header[canonical] = []string{value}
			case []any:
				if h.header[canonical], err = stringList(value, nil); err != nil {
					return h, fmt.Errorf("header %q: %w", key, err)
				}
			default:
				return h, fmt.Errorf("header %q: want a string or a list of strings, not %T", key, value)
			}
		}
	}
	return h, nil
}

// stringList converts a TOML array of strings, mapping each with fn if set.
func stringList(values []any, fn func(string) string) ([]string, error) {
	out := make([]string, len(values))
	for i, v := range values {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%v is not a string", v)
		}
		if fn != nil {
			s = fn(s)
		}
		out[i] = s
	}
	return out, nil
}

// loadCertFiles reads a directory laid out as Docker's certs.d: *.crt
// are CAs, *.cert client certificates with their key in the *.key of the
// same name (or in the .cert itself).
func loadCertFiles(dir string) ([]hostConfig, error) {
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	h := hostConfig{label: "certificate files"}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		name := filepath.Join(dir, e.Name())
		switch filepath.Ext(name) {
		case ".crt":
			h.caCerts = append(h.caCerts, name)
		case ".cert":
			key := strings.TrimSuffix(name, ".cert") + ".key"
			if _, err := os.Stat(key); os.IsNotExist(err) {
				key = ""
			} else if err != nil {
				return nil, err
			}
			h.clientPairs = append(h.clientPairs, [2]string{name, key})
		}
	}
	return []hostConfig{h}, nil
}
