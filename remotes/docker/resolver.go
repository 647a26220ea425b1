package docker

import (
	"net/http"

	"github.com/llitfkitfk/containerd/remotes"
)

// ResolverOptions configure a registry resolver.
type ResolverOptions struct {
	// Hosts returns the endpoints to try for a registry host, in order
	// (config.ConfigureHosts reads them from hosts.toml files). Nil: the
	// host itself over https, anonymous.
	Hosts RegistryHosts
	// Headers are sent with every request.
	Headers http.Header
}

// NewResolver returns a Resolver for registries speaking the OCI
// distribution API (and Docker's registry API v2).
func NewResolver(options ResolverOptions) remotes.Resolver {
	panic("registry resolver: not yet implemented")
}
