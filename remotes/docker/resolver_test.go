package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/remotes"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// testImage stores a one-layer image in repo under tag.
func testImage(t *testing.T, f *fakeRegistry, repo, tag string) (ocispec.Descriptor, ocispec.Descriptor) {
	t.Helper()
	layer := f.putBlob(repo, randBytes(100_000, 1))
	config := f.putBlob(repo, []byte(`{"architecture":"amd64","os":"linux"}`))
	config.MediaType = ocispec.MediaTypeImageConfig
	m, _ := json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: []ocispec.Descriptor{layer}})
	return f.putManifest(repo, tag, ocispec.MediaTypeImageManifest, m), layer
}

func wantKind(t *testing.T, err, kind error, substr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v containing %q", kind, substr)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %q is not %v", err, kind)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Fatalf("error %q does not say %q", err, substr)
	}
}

func TestResolveHead(t *testing.T) {
	f := newFakeRegistry(t)
	want, _ := testImage(t, f, "lib/img", "v1")
	r := NewResolver(ResolverOptions{Hosts: f.hosts(nil)})
	ref := f.host() + "/lib/img:v1"
	name, desc, err := r.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if name != ref || desc.Digest != want.Digest || desc.Size != want.Size || desc.MediaType != want.MediaType {
		t.Fatalf("Resolve = %s %+v, want %+v", name, desc, want)
	}
	if got := f.seen(); !slices.Equal(got, []string{"HEAD /v2/lib/img/manifests/v1"}) {
		t.Fatalf("requests %q, want a single HEAD", got)
	}
	accept := f.requests[0].Header.Get("Accept")
	for _, mt := range []string{ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex, images.MediaTypeDockerSchema2Manifest, images.MediaTypeDockerSchema2ManifestList} {
		if !strings.Contains(accept, mt) {
			t.Errorf("Accept %q lacks %s", accept, mt)
		}
	}

	// By digest.
	_, desc, err = r.Resolve(context.Background(), f.host()+"/lib/img@"+want.Digest.String())
	if err != nil || desc.Digest != want.Digest {
		t.Fatalf("resolve by digest: %+v, %v", desc, err)
	}
}

func TestResolveGetFallback(t *testing.T) {
	f := newFakeRegistry(t)
	f.headNoDigest = true
	want, _ := testImage(t, f, "lib/img", "v1")
	r := NewResolver(ResolverOptions{Hosts: f.hosts(nil)})
	_, desc, err := r.Resolve(context.Background(), f.host()+"/lib/img:v1")
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != want.Digest || desc.Size != want.Size || desc.MediaType != want.MediaType {
		t.Fatalf("Resolve = %+v, want %+v", desc, want)
	}
	if got := f.seen(); !slices.Equal(got, []string{"HEAD /v2/lib/img/manifests/v1", "GET /v2/lib/img/manifests/v1"}) {
		t.Fatalf("requests %q, want HEAD then GET", got)
	}
}

func TestResolveDigestMismatch(t *testing.T) {
	f := newFakeRegistry(t)
	f.headNoDigest = true
	want, _ := testImage(t, f, "lib/img", "v1")
	// The registry serves other content under the digest.
	other := f.putManifest("lib/img", "", ocispec.MediaTypeImageManifest, []byte(`{"schemaVersion":2,"config":{}}`))
	f.manifests["lib/img"][want.Digest.String()] = f.manifests["lib/img"][other.Digest.String()]
	r := NewResolver(ResolverOptions{Hosts: f.hosts(nil)})
	_, _, err := r.Resolve(context.Background(), f.host()+"/lib/img@"+want.Digest.String())
	wantKind(t, err, errdefs.ErrFailedPrecondition, other.Digest.String())
}

func TestResolveUnsupportedMediaType(t *testing.T) {
	f := newFakeRegistry(t)
	f.putManifest("lib/old", "v1", images.MediaTypeDockerSchema1Manifest, []byte(`{"schemaVersion":1,"fsLayers":[]}`))
	f.putManifest("lib/odd", "v1", "application/x-odd", []byte(`odd`))
	r := NewResolver(ResolverOptions{Hosts: f.hosts(nil)})
	_, _, err := r.Resolve(context.Background(), f.host()+"/lib/old:v1")
	wantKind(t, err, errdefs.ErrNotImplemented, "schema 1")
	_, _, err = r.Resolve(context.Background(), f.host()+"/lib/odd:v1")
	wantKind(t, err, errdefs.ErrNotImplemented, `"application/x-odd"`)
}

func TestResolveErrors(t *testing.T) {
	f := newFakeRegistry(t)
	r := NewResolver(ResolverOptions{Hosts: f.hosts(nil)})
	ctx := context.Background()

	// HEAD has no body: the GET fallback is not tried for a 404, and the
	// status alone says what it is.
	_, _, err := r.Resolve(ctx, f.host()+"/lib/none:v1")
	wantKind(t, err, errdefs.ErrNotFound, "404")

	for _, tc := range []struct {
		status int
		code   string
		kind   error
	}{
		{http.StatusForbidden, "DENIED", errdefs.ErrPermissionDenied},
		{http.StatusTooManyRequests, "TOOMANYREQUESTS", errdefs.ErrUnavailable},
		{http.StatusBadRequest, "NAME_INVALID", errdefs.ErrInvalidArgument},
		{http.StatusServiceUnavailable, "", errdefs.ErrUnavailable},
	} {
		f.fail = func(*http.Request) (int, string) {
			return tc.status, `{"errors":[{"code":"` + tc.code + `","message":"the registry says so"}]}`
		}
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString("x"), Size: 1}
		fe, _ := r.Fetcher(ctx, f.host()+"/lib/img:v1")
		err := fetchErr(ctx, fe, desc)
		wantKind(t, err, tc.kind, "the registry says so")
		if tc.code != "" && !strings.Contains(err.Error(), tc.code) {
			t.Errorf("error %q does not name %s", err, tc.code)
		}
	}
}

func TestDescribeResponse(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		kind   error
		msg    string
	}{
		{404, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"v9"}}]}`, errdefs.ErrNotFound, `MANIFEST_UNKNOWN: manifest unknown ({"Tag":"v9"})`},
		{404, `{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]}`, errdefs.ErrNotFound, "NAME_UNKNOWN"},
		{401, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, errdefs.ErrUnauthenticated, "authentication required"},
		{403, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`, errdefs.ErrPermissionDenied, "denied"},
		{400, `{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}`, errdefs.ErrFailedPrecondition, "MANIFEST_BLOB_UNKNOWN"},
		{400, `{"errors":[{"code":"DIGEST_INVALID","message":"a"},{"code":"SIZE_INVALID","message":"b"}]}`, errdefs.ErrInvalidArgument, "DIGEST_INVALID: a; SIZE_INVALID: b"},
		{502, `<html>bad gateway</html>`, errdefs.ErrUnavailable, ""},
		{418, `short and plain`, errdefs.ErrUnknown, "short and plain"},
	} {
		msg, kind := describeResponse(tc.status, []byte(tc.body))
		if kind != tc.kind || !strings.Contains(msg, tc.msg) {
			t.Errorf("%d %s: %q, %v; want %q, %v", tc.status, tc.body, msg, kind, tc.msg, tc.kind)
		}
		if strings.Contains(msg, "<html>") {
			t.Errorf("%d: html body in message %q", tc.status, msg)
		}
	}
}

func TestMirrorFallback(t *testing.T) {
	mirror, server := newFakeRegistry(t), newFakeRegistry(t)
	want, layer := testImage(t, server, "lib/img", "v1")
	// The mirror has the layer but is broken for manifests.
	mirror.putBlob("lib/img", randBytes(100_000, 1))
	mirror.fail = func(r *http.Request) (int, string) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			return http.StatusInternalServerError, `{"errors":[{"code":"UNKNOWN","message":"mirror broken"}]}`
		}
		return 0, ""
	}
	hosts := func(string) ([]RegistryHost, error) {
		return []RegistryHost{
			{Client: mirror.srv.Client(), Host: mirror.host(), Scheme: "http", Path: "/v2", Capabilities: HostCapabilityPull | HostCapabilityResolve},
			{Client: server.srv.Client(), Host: server.host(), Scheme: "http", Path: "/v2", Capabilities: HostCapabilityAll},
		}, nil
	}
	r := NewResolver(ResolverOptions{Hosts: hosts})
	ctx := context.Background()
	ref := "example.com/lib/img:v1"
	_, desc, err := r.Resolve(ctx, ref)
	if err != nil || desc.Digest != want.Digest {
		t.Fatalf("Resolve: %+v, %v", desc, err)
	}
	if mirror.count("HEAD", "/manifests/v1") != 1 || server.count("HEAD", "/manifests/v1") != 1 {
		t.Fatalf("mirror %q, server %q: want one HEAD each", mirror.seen(), server.seen())
	}

	// The manifest comes from the server (the mirror fails), the layer
	// from the mirror.
	fe, _ := r.Fetcher(ctx, ref)
	for _, desc := range []ocispec.Descriptor{want, layer} {
		if err := fetchErr(ctx, fe, desc); err != nil {
			t.Fatal(err)
		}
	}
	if server.count("GET", "/blobs/") != 0 || mirror.count("GET", "/blobs/"+layer.Digest.String()) != 1 {
		t.Fatalf("layer not fetched from the mirror alone: mirror %q, server %q", mirror.seen(), server.seen())
	}

	// A mirror without the resolve capability is not asked for tags.
	mirror.requests, server.requests = nil, nil
	hosts2 := func(string) ([]RegistryHost, error) {
		h, _ := hosts("")
		h[0].Capabilities = HostCapabilityPull
		return h, nil
	}
	if _, _, err := NewResolver(ResolverOptions{Hosts: hosts2}).Resolve(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if len(mirror.seen()) != 0 {
		t.Fatalf("pull-only mirror asked to resolve a tag: %q", mirror.seen())
	}

	// Nothing anywhere: NotFound.
	_, _, err = NewResolver(ResolverOptions{Hosts: hosts}).Resolve(ctx, "example.com/lib/none:v1")
	if !errdefs.IsNotFound(err) && !errdefs.IsUnavailable(err) {
		t.Fatalf("missing image: %v", err)
	}
}

func fetchAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestFetchResumesAfterDrop(t *testing.T) {
	for _, ignoreRange := range []bool{false, true} {
		f := newFakeRegistry(t)
		data := randBytes(300_000, 2)
		desc := f.putBlob("lib/img", data)
		f.dropAfter, f.drops, f.ignoreRange = 100_000, 1, ignoreRange
		fe, _ := NewResolver(ResolverOptions{Hosts: f.hosts(nil)}).Fetcher(context.Background(), f.host()+"/lib/img:v1")
		rc, err := fe.Fetch(context.Background(), desc)
		if err != nil {
			t.Fatal(err)
		}
		got := fetchAll(t, rc)
		rc.Close()
		if !bytes.Equal(got, data) {
			t.Fatalf("ignoreRange=%v: got %d bytes (digest %s), want the %d sent", ignoreRange, len(got), digest.FromBytes(got), len(data))
		}
		seen := f.seen()
		if len(seen) != 2 || seen[1] != "GET /v2/lib/img/blobs/"+desc.Digest.String()+" Range:bytes=100000-" {
			t.Fatalf("ignoreRange=%v: requests %q, want a second GET with Range from 100000", ignoreRange, seen)
		}
	}
}

func TestFetchGivesUpWhenResumesFail(t *testing.T) {
	f := newFakeRegistry(t)
	data := randBytes(10_000, 3)
	desc := f.putBlob("lib/img", data)
	f.dropAfter, f.drops = 4000, 1
	f.fail = func(r *http.Request) (int, string) {
		if r.Header.Get("Range") != "" {
			return http.StatusServiceUnavailable, ""
		}
		return 0, ""
	}
	fe, _ := NewResolver(ResolverOptions{Hosts: f.hosts(nil)}).Fetcher(context.Background(), f.host()+"/lib/img:v1")
	rc, err := fe.Fetch(context.Background(), desc)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if !errdefs.IsUnavailable(err) || len(got) != 4000 {
		t.Fatalf("read %d bytes, err %v; want 4000 and Unavailable", len(got), err)
	}
	if n := f.count("GET", "/blobs/"); n != 1+maxFetchRetries {
		t.Fatalf("%d GETs, want the first and %d resumes", n, maxFetchRetries)
	}
}

// A body that ends cleanly before the descriptor's size is the registry's
// word, not a broken connection: refused at once, naming both sizes.
func TestFetchRefusesShortBody(t *testing.T) {
	f := newFakeRegistry(t)
	data := randBytes(10_000, 3)
	desc := f.putBlob("lib/img", data)
	f.truncate = 4000
	fe, _ := NewResolver(ResolverOptions{Hosts: f.hosts(nil)}).Fetcher(context.Background(), f.host()+"/lib/img:v1")
	err := fetchErr(context.Background(), fe, desc)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "serves 4000 bytes") || !strings.Contains(err.Error(), "size is 10000") {
		t.Fatalf("fetch of a truncated blob: %v; want FailedPrecondition naming 4000 and 10000", err)
	}
	if n := f.count("GET", "/blobs/"); n != 1 {
		t.Fatalf("%d GETs, want 1: a short body is not retried", n)
	}
}

func TestFetchNeverYieldsMoreThanSize(t *testing.T) {
	f := newFakeRegistry(t)
	data := randBytes(1000, 4)
	desc := f.putBlob("lib/img", data)
	desc.Size = 600 // the descriptor claims less than the registry has
	fe, _ := NewResolver(ResolverOptions{Hosts: f.hosts(nil)}).Fetcher(context.Background(), f.host()+"/lib/img:v1")
	rc, err := fe.Fetch(context.Background(), desc)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got := fetchAll(t, rc); !bytes.Equal(got, data[:600]) {
		t.Fatalf("read %d bytes, want the first 600", len(got))
	}
}

func TestFetchSeek(t *testing.T) {
	f := newFakeRegistry(t)
	data := randBytes(3<<20, 5)
	desc := f.putBlob("lib/img", data)
	fe, _ := NewResolver(ResolverOptions{Hosts: f.hosts(nil)}).Fetcher(context.Background(), f.host()+"/lib/img:v1")
	rc, err := fe.Fetch(context.Background(), desc)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	s := rc.(io.Seeker)

	// A short way ahead while reading: read through, no new request.
	p := make([]byte, 10)
	if _, err := io.ReadFull(rc, p); err != nil || !bytes.Equal(p, data[:10]) {
		t.Fatalf("first read: %v", err)
	}
	if _, err := s.Seek(1000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, p); err != nil || !bytes.Equal(p, data[1000:1010]) {
		t.Fatalf("after a short seek: %v", err)
	}
	if n := len(f.seen()); n != 1 {
		t.Fatalf("short seek made a request: %q", f.seen())
	}

	// Far, or back: a ranged request.
	for _, off := range []int64{2 << 20, 500} {
		if _, err := s.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if got := fetchAll(t, rc); !bytes.Equal(got, data[off:]) {
			t.Fatalf("after seek to %d read %d bytes, want %d", off, len(got), len(data)-int(off))
		}
		if seen := f.seen(); seen[len(seen)-1] != fmt.Sprintf("GET /v2/lib/img/blobs/%s Range:bytes=%d-", desc.Digest, off) {
			t.Fatalf("requests %q: want a GET ranged from %d", seen, off)
		}
	}
	if _, err := s.Seek(int64(len(data))+1, io.SeekStart); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("seek past the end: %v", err)
	}
}

func TestFetchManifestAndNotFound(t *testing.T) {
	f := newFakeRegistry(t)
	want, _ := testImage(t, f, "lib/img", "v1")
	fe, _ := NewResolver(ResolverOptions{Hosts: f.hosts(nil)}).Fetcher(context.Background(), f.host()+"/lib/img:v1")
	rc, err := fe.Fetch(context.Background(), want)
	if err != nil {
		t.Fatal(err)
	}
	if got := fetchAll(t, rc); digest.FromBytes(got) != want.Digest {
		t.Fatal("manifest content differs")
	}
	rc.Close()
	if f.count("GET", "/manifests/"+want.Digest.String()) != 1 {
		t.Fatalf("manifest not fetched by digest from /manifests: %q", f.seen())
	}
	err = fetchErr(context.Background(), fe, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString("nope"), Size: 4})
	wantKind(t, err, errdefs.ErrNotFound, "BLOB_UNKNOWN")
}

func TestParseChallenges(t *testing.T) {
	got := parseChallenges([]string{
		`Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push", Basic realm="x \"y\""`,
		`basic realm=plain`,
	})
	want := []challenge{
		{"bearer", map[string]string{"realm": "https://auth.example.com/token", "service": "registry.example.com", "scope": "repository:a/b:pull,push"}},
		{"basic", map[string]string{"realm": `x "y"`}},
		{"basic", map[string]string{"realm": "plain"}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i].scheme != want[i].scheme || len(got[i].params) != len(want[i].params) {
			t.Fatalf("challenge %d: %+v, want %+v", i, got[i], want[i])
		}
		for k, v := range want[i].params {
			if got[i].params[k] != v {
				t.Fatalf("challenge %d %s: %q, want %q", i, k, got[i].params[k], v)
			}
		}
	}
	// Garbage does not panic and yields nothing usable.
	for _, s := range []string{`=`, `"`, `Bearer realm="unterminated`, `,,, =x`, "\x00Bearer"} {
		parseChallenges([]string{s})
	}
}

var _ = time.Now

func TestFetchResumeRetriesUnavailable(t *testing.T) {
	f := newFakeRegistry(t)
	data := randBytes(300_000, 6)
	desc := f.putBlob("lib/img", data)
	f.dropAfter, f.drops = 100_000, 1
	busy := 1
	f.fail = func(r *http.Request) (int, string) {
		if r.Header.Get("Range") != "" && busy > 0 {
			busy--
			return http.StatusServiceUnavailable, `{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}`
		}
		return 0, ""
	}
	fe, _ := NewResolver(ResolverOptions{Hosts: f.hosts(nil)}).Fetcher(context.Background(), f.host()+"/lib/img:v1")
	rc, err := fe.Fetch(context.Background(), desc)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got := fetchAll(t, rc); !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want the %d sent", len(got), len(data))
	}
	if n := f.count("GET", "Range:bytes=100000-"); n != 2 {
		t.Fatalf("requests %q: want two ranged GETs (one refused)", f.seen())
	}

	// A 404 on reopening is final.
	f.drops = 1
	f.fail = func(r *http.Request) (int, string) {
		if r.Header.Get("Range") != "" {
			return http.StatusNotFound, `{"errors":[{"code":"BLOB_UNKNOWN","message":"gone"}]}`
		}
		return 0, ""
	}
	f.requests = nil
	rc2, err := fe.Fetch(context.Background(), desc)
	if err != nil {
		t.Fatal(err)
	}
	defer rc2.Close()
	_, err = io.ReadAll(rc2)
	wantKind(t, err, errdefs.ErrNotFound, "BLOB_UNKNOWN")
	if n := f.count("GET", "Range:"); n != 1 {
		t.Fatalf("404 retried: %q", f.seen())
	}
}

func TestFetchByDigest(t *testing.T) {
	f := newFakeRegistry(t)
	want, layer := testImage(t, f, "lib/img", "v1")
	fe, _ := NewResolver(ResolverOptions{Hosts: f.hosts(nil)}).Fetcher(context.Background(), f.host()+"/lib/img:v1")
	fbd := fe.(remotes.FetcherByDigest)
	rc, desc, err := fbd.FetchByDigest(context.Background(), ocispec.Descriptor{Digest: layer.Digest})
	if err != nil {
		t.Fatal(err)
	}
	data := fetchAll(t, rc)
	rc.Close()
	if desc.Size != layer.Size || digest.FromBytes(data) != layer.Digest {
		t.Fatalf("by digest: %+v, %d bytes", desc, len(data))
	}
	rc, desc, err = fbd.FetchByDigest(context.Background(), ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: want.Digest})
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if desc.Size != want.Size || desc.MediaType != want.MediaType {
		t.Fatalf("manifest by digest: %+v", desc)
	}
}

func TestResolveWithoutHead(t *testing.T) {
	f := newFakeRegistry(t)
	want, _ := testImage(t, f, "lib/img", "v1")
	f.fail = func(r *http.Request) (int, string) {
		if r.Method == http.MethodHead {
			return http.StatusMethodNotAllowed, ""
		}
		return 0, ""
	}
	_, desc, err := NewResolver(ResolverOptions{Hosts: f.hosts(nil)}).Resolve(context.Background(), f.host()+"/lib/img:v1")
	if err != nil || desc.Digest != want.Digest || desc.MediaType != want.MediaType {
		t.Fatalf("Resolve: %+v %v", desc, err)
	}
}

// fetchErr fetches desc and reads it all, returning the first error: the
// reader asks the registry on its first Read.
func fetchErr(ctx context.Context, fe remotes.Fetcher, desc ocispec.Descriptor) error {
	rc, err := fe.Fetch(ctx, desc)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}
