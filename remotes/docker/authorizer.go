package docker

import "net/http"

// AuthorizerOpt configures an Authorizer made by NewDockerAuthorizer.
type AuthorizerOpt func(*authorizerConfig)

type authorizerConfig struct {
	client *http.Client
	creds  func(host string) (string, string, error)
	header http.Header
}

// WithAuthClient sets the client tokens are fetched with.
func WithAuthClient(client *http.Client) AuthorizerOpt {
	return func(c *authorizerConfig) { c.client = client }
}

// WithAuthCreds sets where the username and secret of a host come from;
// an empty username with a secret means the secret is a refresh token.
func WithAuthCreds(creds func(host string) (string, string, error)) AuthorizerOpt {
	return func(c *authorizerConfig) { c.creds = creds }
}

// WithAuthHeader sets headers sent with token requests.
func WithAuthHeader(header http.Header) AuthorizerOpt {
	return func(c *authorizerConfig) { c.header = header }
}

// NewDockerAuthorizer returns an Authorizer that answers the Basic and
// Bearer challenges of registries' WWW-Authenticate headers.
func NewDockerAuthorizer(opts ...AuthorizerOpt) Authorizer {
	panic("registry authorizer: not yet implemented")
}
