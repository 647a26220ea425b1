package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/llitfkitfk/containerd/errdefs"
)

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
//
// It learns a host's challenge from its first 401 and from then on
// authorizes every request to that host up front. Bearer tokens are
// fetched once per host and scope and reused until they expire.
func NewDockerAuthorizer(opts ...AuthorizerOpt) Authorizer {
	a := &dockerAuthorizer{hosts: map[string]*authHandler{}, now: time.Now}
	for _, o := range opts {
		o(&a.authorizerConfig)
	}
	if a.client == nil {
		a.client = http.DefaultClient
	}
	return a
}

type dockerAuthorizer struct {
	authorizerConfig
	now func() time.Time // a test can move time on

	mu    sync.Mutex
	hosts map[string]*authHandler // by request host[:port]
}

// authHandler answers one host's challenge.
type authHandler struct {
	host    string
	scheme  string // "basic" or "bearer"
	realm   string
	service string
	scope   []string // the challenge's scope, used when the request names none

	mu     sync.Mutex
	tokens map[string]*tokenEntry // by scope key
}

// tokenEntry is a token being fetched (ready open) or fetched.
type tokenEntry struct {
	ready   chan struct{}
	token   string
	expires time.Time
	err     error
}

// Authorize adds an Authorization header to req if its host has
// challenged before.
func (a *dockerAuthorizer) Authorize(ctx context.Context, req *http.Request) error {
	a.mu.Lock()
	h := a.hosts[req.URL.Host]
	a.mu.Unlock()
	if h == nil {
		return nil
	}
	switch h.scheme {
	case "basic":
		user, secret, err := a.credentials(h.host)
		if err != nil {
			return err
		}
		if user == "" && secret == "" {
			return nil
		}
		req.SetBasicAuth(user, secret)
	case "bearer":
		scopes := scopesFrom(ctx)
		if len(scopes) == 0 {
			scopes = h.scope
		}
		token, err := a.token(ctx, h, scopes)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return nil
}

// AddResponses learns the challenge of the last response, a 401, and
// forgets the token that request carried so the next one is fresh.
func (a *dockerAuthorizer) AddResponses(ctx context.Context, responses []*http.Response) error {
	if len(responses) == 0 {
		return nil
	}
	last := responses[len(responses)-1]
	host := last.Request.URL.Host
	challenges := parseChallenges(last.Header.Values("WWW-Authenticate"))

	for _, scheme := range []string{"bearer", "basic"} {
		i := slices.IndexFunc(challenges, func(c challenge) bool { return c.scheme == scheme })
		if i < 0 {
			continue
		}
		c := challenges[i]
		h := &authHandler{host: host, scheme: scheme, tokens: map[string]*tokenEntry{}}
		if scheme == "bearer" {
			h.realm, h.service = c.params["realm"], c.params["service"]
			if h.realm == "" {
				return fmt.Errorf("authorization failed for %s: bearer challenge without a realm: %w", host, errdefs.ErrUnauthenticated)
			}
			if u, err := url.Parse(h.realm); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return fmt.Errorf("authorization failed for %s: bearer realm %q is not an http(s) URL: %w", host, h.realm, errdefs.ErrUnauthenticated)
			}
			if s := c.params["scope"]; s != "" {
				h.scope = strings.Fields(s)
			}
		} else {
			user, secret, err := a.credentials(host)
			if err != nil {
				return err
			}
			if user == "" && secret == "" {
				return fmt.Errorf("authorization failed for %s: the registry asks for a username and password and none is configured: %w", host, errdefs.ErrUnauthenticated)
			}
		}

		a.mu.Lock()
		defer a.mu.Unlock()
		if old := a.hosts[host]; old != nil && old.sameChallenge(h) {
			// Same challenge: keep the other scopes' tokens, drop the one
			// that was refused so that the retry fetches a new one.
			old.forget(last.Request.Header.Get("Authorization"))
			return nil
		}
		a.hosts[host] = h
		return nil
	}
	return fmt.Errorf("authorization failed for %s: no supported challenge in %q: %w",
		host, last.Header.Values("WWW-Authenticate"), errdefs.ErrUnauthenticated)
}

func (h *authHandler) sameChallenge(o *authHandler) bool {
	return h.scheme == o.scheme && h.realm == o.realm && h.service == o.service
}

// forget drops cached tokens sent as authorization.
func (h *authHandler) forget(authorization string) {
	token, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, e := range h.tokens {
		select {
		case <-e.ready:
			if e.token == token {
				delete(h.tokens, k)
			}
		default:
		}
	}
}

func (a *dockerAuthorizer) credentials(host string) (string, string, error) {
	if a.creds == nil {
		return "", "", nil
	}
	user, secret, err := a.creds(host)
	if err != nil {
		return "", "", fmt.Errorf("credentials for %s: %w", host, err)
	}
	return user, secret, nil
}

// token returns a valid token for scopes, fetching it if none is cached;
// concurrent callers wanting the same scopes share one fetch.
func (a *dockerAuthorizer) token(ctx context.Context, h *authHandler, scopes []string) (string, error) {
	scopes = slices.Clone(scopes)
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	key := strings.Join(scopes, " ")

	for {
		h.mu.Lock()
		e := h.tokens[key]
		if e != nil {
			select {
			case <-e.ready:
				if e.err != nil || !a.now().Before(e.expires) {
					e = nil // failed or expired: fetch again
				}
			default:
			}
		}
		fetch := e == nil
		if fetch {
			e = &tokenEntry{ready: make(chan struct{})}
			h.tokens[key] = e
		}
		h.mu.Unlock()

		if fetch {
			e.token, e.expires, e.err = a.fetchToken(ctx, h, scopes)
			close(e.ready)
		}
		select {
		case <-e.ready:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		// The fetch we waited for was cut short by its own caller's
		// context, not ours: fetch again.
		if !fetch && ctx.Err() == nil && (errors.Is(e.err, context.Canceled) || errors.Is(e.err, context.DeadlineExceeded)) {
			continue
		}
		return e.token, e.err
	}
}

// tokenResponse is what a token server answers, in either of the forms
// the docker token spec and OAuth2 use.
type tokenResponse struct {
	Token       string    `json:"token"`
	AccessToken string    `json:"access_token"`
	ExpiresIn   int64     `json:"expires_in"`
	IssuedAt    time.Time `json:"issued_at"`
}

// defaultTokenLifetime is the docker token spec's default expires_in.
const defaultTokenLifetime = 60 * time.Second

// fetchToken asks h's realm for a token for scopes: with a GET carrying
// the host's basic credentials (or none), or, when the secret is a
// refresh token, with an OAuth2 POST.
func (a *dockerAuthorizer) fetchToken(ctx context.Context, h *authHandler, scopes []string) (string, time.Time, error) {
	user, secret, err := a.credentials(h.host)
	if err != nil {
		return "", time.Time{}, err
	}
	var req *http.Request
	if user == "" && secret != "" {
		form := url.Values{
			"grant_type":    {"refresh_token"},
			"refresh_token": {secret},
			"client_id":     {"containerd-client"},
			"access_type":   {"offline"},
		}
		if h.service != "" {
			form.Set("service", h.service)
		}
		if len(scopes) > 0 {
			form.Set("scope", strings.Join(scopes, " "))
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, h.realm, strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		u, _ := url.Parse(h.realm) // checked in AddResponses
		q := u.Query()
		if h.service != "" {
			q.Set("service", h.service)
		}
		for _, s := range scopes {
			q.Add("scope", s)
		}
		u.RawQuery = q.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err == nil && user != "" {
			req.SetBasicAuth(user, secret)
		}
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token request for %s: %w", h.host, err)
	}
	for k, v := range a.header {
		req.Header[k] = slices.Clone(v)
	}

	issued := a.now()
	resp, err := a.client.Do(req)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("fetch token for %s from %s: %w", h.host, h.realm, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		msg, kind := describeResponse(resp.StatusCode, body)
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			kind = errdefs.ErrUnauthenticated
		}
		return "", time.Time{}, fmt.Errorf("authorization failed for %s: token server %s answered %s%s: %w", h.host, h.realm, resp.Status, msg, kind)
	}
	var tr tokenResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tr); err != nil {
		return "", time.Time{}, fmt.Errorf("authorization failed for %s: token server %s: decode answer: %w: %w", h.host, h.realm, err, errdefs.ErrUnauthenticated)
	}
	token := tr.Token
	if token == "" {
		token = tr.AccessToken
	}
	if token == "" {
		return "", time.Time{}, fmt.Errorf("authorization failed for %s: token server %s answered no token: %w", h.host, h.realm, errdefs.ErrUnauthenticated)
	}
	lifetime := defaultTokenLifetime
	if tr.ExpiresIn > 0 {
		lifetime = time.Duration(min(tr.ExpiresIn, 1<<31)) * time.Second
	}
	// Count from when the request went out, so a slow answer cannot
	// make a token look fresher than it is.
	return token, issued.Add(lifetime), nil
}

// Scopes are carried in the context, so that one authorizer serves the
// requests of every repository with tokens of the right scope.
type scopesKey struct{}

// withScopes adds token scopes ("repository:<path>:pull") to ctx.
func withScopes(ctx context.Context, scopes ...string) context.Context {
	old := scopesFrom(ctx)
	return context.WithValue(ctx, scopesKey{}, append(slices.Clip(old), scopes...))
}

func scopesFrom(ctx context.Context) []string {
	s, _ := ctx.Value(scopesKey{}).([]string)
	return s
}

// repositoryScope is the token scope for actions on a repository.
func repositoryScope(repository string, push bool) string {
	if push {
		return "repository:" + repository + ":pull,push"
	}
	return "repository:" + repository + ":pull"
}

// challenge is one auth scheme of a WWW-Authenticate header.
type challenge struct {
	scheme string            // lower case
	params map[string]string // keys lower case
}

// parseChallenges reads WWW-Authenticate headers (RFC 7235): each holds
// one or more challenges, a scheme followed by comma-separated
// key=value parameters, values being tokens or quoted strings.
func parseChallenges(headers []string) []challenge {
	var out []challenge
	for _, s := range headers {
		var cur *challenge
		for {
			s = strings.TrimLeft(s, " \t,")
			if s == "" {
				break
			}
			var tok string
			tok, s = cutToken(s)
			if tok == "" {
				// Not a token: skip the offending byte.
				s = s[1:]
				continue
			}
			rest := strings.TrimLeft(s, " \t")
			if strings.HasPrefix(rest, "=") && cur != nil {
				var val string
				val, s = cutValue(strings.TrimLeft(rest[1:], " \t"))
				cur.params[strings.ToLower(tok)] = val
				continue
			}
			if strings.HasPrefix(rest, "=") {
				// A parameter before any scheme: ignore it.
				_, s = cutValue(strings.TrimLeft(rest[1:], " \t"))
				continue
			}
			out = append(out, challenge{scheme: strings.ToLower(tok), params: map[string]string{}})
			cur = &out[len(out)-1]
		}
	}
	return out
}

func isTokenByte(c byte) bool {
	return c > 0x20 && c < 0x7f && !strings.ContainsRune("()<>@,;:\\\"/[]?={}", rune(c))
}

func cutToken(s string) (string, string) {
	i := 0
	for i < len(s) && isTokenByte(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// cutValue reads a token or a quoted string, unescaping the latter.
func cutValue(s string) (string, string) {
	if !strings.HasPrefix(s, `"`) {
		return cutToken(s)
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:]
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), "" // unterminated: take what there is
}
