package docker

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llitfkitfk/containerd/errdefs"
)

func creds(user, pass string) func(string) (string, string, error) {
	return func(string) (string, string, error) { return user, pass, nil }
}

func TestBasicAuth(t *testing.T) {
	f := newFakeRegistry(t)
	want, _ := testImage(t, f, "lib/img", "v1")
	f.basicAuth("alice", "s3cret")
	ctx := context.Background()
	ref := f.host() + "/lib/img:v1"

	auth := NewDockerAuthorizer(WithAuthClient(f.srv.Client()), WithAuthCreds(creds("alice", "s3cret")))
	r := NewResolver(ResolverOptions{Hosts: f.hosts(auth)})
	for range 2 {
		if _, desc, err := r.Resolve(ctx, ref); err != nil || desc.Digest != want.Digest {
			t.Fatalf("Resolve: %+v, %v", desc, err)
		}
	}
	// One challenge, then credentials up front.
	if got := len(f.seen()); got != 3 {
		t.Fatalf("requests %q: want a 401, a retry, and one authorized HEAD", f.seen())
	}

	// No credentials: a clear error, not a retry loop.
	f.requests = nil
	r = NewResolver(ResolverOptions{Hosts: f.hosts(NewDockerAuthorizer())})
	_, _, err := r.Resolve(ctx, ref)
	wantKind(t, err, errdefs.ErrUnauthenticated, "asks for a username and password and none is configured")

	// Wrong credentials: the second 401 is the answer.
	r = NewResolver(ResolverOptions{Hosts: f.hosts(NewDockerAuthorizer(WithAuthCreds(creds("alice", "wrong"))))})
	_, _, err = r.Resolve(ctx, ref)
	wantKind(t, err, errdefs.ErrUnauthenticated, "authorization failed for "+f.host())
}

func TestBearerAnonymous(t *testing.T) {
	f := newFakeRegistry(t)
	want, layer := testImage(t, f, "lib/img", "v1")
	ts := &tokenServer{}
	f.bearerAuth(ts)
	ctx := context.Background()
	ref := f.host() + "/lib/img:v1"
	auth := NewDockerAuthorizer(WithAuthClient(f.srv.Client()))
	r := NewResolver(ResolverOptions{Hosts: f.hosts(auth)})
	if _, desc, err := r.Resolve(ctx, ref); err != nil || desc.Digest != want.Digest {
		t.Fatalf("Resolve: %+v, %v", desc, err)
	}
	fe, _ := r.Fetcher(ctx, ref)
	rc, err := fe.Fetch(ctx, layer)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if !slices.Equal(ts.issued, []string{"repository:lib/img:pull|"}) {
		t.Fatalf("tokens issued %q: want one anonymous pull token, reused", ts.issued)
	}
	if f.count("GET", "/token") != 1 {
		t.Fatalf("token requests: %q", f.seen())
	}
	// Another repository needs a token of its own, fetched up front.
	testImage(t, f, "lib/other", "v1")
	if _, _, err := r.Resolve(ctx, f.host()+"/lib/other:v1"); err != nil {
		t.Fatal(err)
	}
	if len(ts.issued) != 2 || ts.issued[1] != "repository:lib/other:pull|" {
		t.Fatalf("tokens issued %q", ts.issued)
	}
}

func TestBearerWithCredsAndExpiry(t *testing.T) {
	f := newFakeRegistry(t)
	testImage(t, f, "lib/img", "v1")
	ts := &tokenServer{user: "bob", pass: "pw", expiresIn: 300}
	f.bearerAuth(ts)
	ctx := context.Background()
	ref := f.host() + "/lib/img:v1"
	a := NewDockerAuthorizer(WithAuthClient(f.srv.Client()), WithAuthCreds(creds("bob", "pw"))).(*dockerAuthorizer)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	r := NewResolver(ResolverOptions{Hosts: f.hosts(a)})

	for range 3 {
		if _, _, err := r.Resolve(ctx, ref); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(ts.issued, []string{"repository:lib/img:pull|bob"}) {
		t.Fatalf("tokens issued %q: want one, with bob's basic credentials", ts.issued)
	}
	mu.Lock()
	now = now.Add(299 * time.Second)
	mu.Unlock()
	if _, _, err := r.Resolve(ctx, ref); err != nil || len(ts.issued) != 1 {
		t.Fatalf("before expiry: %v, issued %q", err, ts.issued)
	}
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	if _, _, err := r.Resolve(ctx, ref); err != nil || len(ts.issued) != 2 {
		t.Fatalf("after expiry: %v, issued %q: want a new token", err, ts.issued)
	}

	// Wrong password: the token server's refusal is the error.
	r = NewResolver(ResolverOptions{Hosts: f.hosts(NewDockerAuthorizer(WithAuthClient(f.srv.Client()), WithAuthCreds(creds("bob", "nope"))))})
	_, _, err := r.Resolve(ctx, ref)
	wantKind(t, err, errdefs.ErrUnauthenticated, "incorrect username or password")
}

func TestBearerRefreshToken(t *testing.T) {
	f := newFakeRegistry(t)
	testImage(t, f, "lib/img", "v1")
	ts := &tokenServer{pass: "refresh-me"}
	f.bearerAuth(ts)
	auth := NewDockerAuthorizer(WithAuthClient(f.srv.Client()), WithAuthCreds(creds("", "refresh-me")))
	r := NewResolver(ResolverOptions{Hosts: f.hosts(auth)})
	if _, _, err := r.Resolve(context.Background(), f.host()+"/lib/img:v1"); err != nil {
		t.Fatal(err)
	}
	if len(ts.forms) != 1 || !strings.Contains(ts.forms[0], "grant_type=refresh_token") || !strings.Contains(ts.forms[0], "refresh_token=refresh-me") {
		t.Fatalf("token POSTs %q", ts.forms)
	}
}

func TestBearerRefusedAfterFreshToken(t *testing.T) {
	f := newFakeRegistry(t)
	_, layer := testImage(t, f, "lib/img", "v1")
	ts := &tokenServer{reject: true}
	f.bearerAuth(ts)
	r := NewResolver(ResolverOptions{Hosts: f.hosts(NewDockerAuthorizer(WithAuthClient(f.srv.Client())))})
	_, _, err := r.Resolve(context.Background(), f.host()+"/lib/img:v1")
	wantKind(t, err, errdefs.ErrUnauthenticated, "authorization failed for "+f.host())
	if n := f.count("HEAD", "/manifests/"); n != 2 {
		t.Fatalf("%d HEADs: want the challenged one and one retry", n)
	}
	// A GET has a body: its message is passed on.
	fe, _ := r.Fetcher(context.Background(), f.host()+"/lib/img:v1")
	err = fetchErr(context.Background(), fe, layer)
	wantKind(t, err, errdefs.ErrUnauthenticated, "UNAUTHORIZED: authentication required")
}

func TestBearerConcurrentShareOneToken(t *testing.T) {
	f := newFakeRegistry(t)
	_, layer := testImage(t, f, "lib/img", "v1")
	ts := &tokenServer{}
	f.bearerAuth(ts)
	ctx := context.Background()
	r := NewResolver(ResolverOptions{Hosts: f.hosts(NewDockerAuthorizer(WithAuthClient(f.srv.Client())))})
	ref := f.host() + "/lib/img:v1"
	if _, _, err := r.Resolve(ctx, ref); err != nil {
		t.Fatal(err)
	}
	fe, _ := r.Fetcher(ctx, ref)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			rc, err := fe.Fetch(ctx, layer)
			if err != nil {
				t.Error(err)
				return
			}
			rc.Close()
		})
	}
	wg.Wait()
	if len(ts.issued) != 1 {
		t.Fatalf("tokens issued %q, want 1", ts.issued)
	}
}
