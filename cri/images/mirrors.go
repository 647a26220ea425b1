package images

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/errdefs"
	dockerremote "github.com/llitfkitfk/containerd/remotes/docker"
)

// hasLegacyHosts tells whether reg has inline settings that choose or
// configure hosts.
func hasLegacyHosts(reg config.Registry) bool {
	if len(reg.Mirrors) > 0 {
		return true
	}
	for _, c := range reg.Configs {
		if c.TLS != nil {
			return true
		}
	}
	return false
}

// writeLegacyHosts turns containerd 1.x's inline registry settings
// (registry.mirrors.<host>.endpoint and registry.configs.<host>.tls),
// which containerd 2 still honours when registry.config_path is not
// set, into a hosts.toml directory under dir, so that they go through
// the same resolver configuration as config_path does.
//
// For a host with mirrors, its endpoints are tried in order, then the
// host itself unless an endpoint is the host; "*" applies to hosts
// without mirrors of their own. TLS settings of an endpoint's host apply
// to that endpoint.
func writeLegacyHosts(dir string, reg config.Registry) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	hosts := map[string]bool{}
	for h := range reg.Mirrors {
		hosts[h] = true
	}
	for h, c := range reg.Configs {
		if c.TLS != nil {
			hosts[h] = true
		}
	}
	for host := range hosts {
		var b strings.Builder
		m, ok := reg.Mirrors[host]
		if !ok {
			m = reg.Mirrors["*"]
		}
		endpoints := slices.Clone(m.Endpoints)
		server := ""
		if host != "*" {
			server = defaultEndpoint(host)
		}
		for i, e := range endpoints {
			if !strings.Contains(e, "://") {
				e = defaultScheme(hostOf(e)) + "://" + e
			}
			u, err := url.Parse(e)
			if err != nil || u.Host == "" {
				return fmt.Errorf("registry.mirrors.%q: endpoint %q is not a URL: %w", host, endpoints[i], errdefs.ErrInvalidArgument)
			}
			endpoints[i] = e
			if u.Host == host {
				server = e
			}
		}
		if server != "" {
			fmt.Fprintf(&b, "server = %q\n", server)
			writeTLS(&b, reg.Configs[hostOf(server)].TLS)
		}
		for _, e := range endpoints {
			fmt.Fprintf(&b, "\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", e)
			writeTLS(&b, reg.Configs[hostOf(e)].TLS)
		}
		name := host
		if host == "*" {
			name = "_default"
		}
		if err := os.MkdirAll(filepath.Join(dir, name), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name, "hosts.toml"), []byte(b.String()), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func writeTLS(b *strings.Builder, tls *config.TLSConfig) {
	if tls == nil {
		return
	}
	if tls.InsecureSkipVerify {
		b.WriteString("  skip_verify = true\n")
	}
	if tls.CAFile != "" {
		fmt.Fprintf(b, "  ca = %q\n", tls.CAFile)
	}
	if tls.CertFile != "" {
		fmt.Fprintf(b, "  client = [[%q, %q]]\n", tls.CertFile, tls.KeyFile)
	}
}

// hostOf is the host[:port] of an endpoint URL, or the endpoint itself.
func hostOf(endpoint string) string {
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
		return u.Host
	}
	return endpoint
}

// defaultScheme is containerd's for a mirror endpoint written without
// one: http for loopback hosts, else https.
func defaultScheme(host string) string {
	if dockerremote.IsLocalhost(host) {
		return "http"
	}
	return "https"
}

// defaultEndpoint is where a registry host is reached when nothing else
// is configured.
func defaultEndpoint(host string) string {
	if host == "docker.io" {
		return "https://registry-1.docker.io"
	}
	return defaultScheme(host) + "://" + host
}
