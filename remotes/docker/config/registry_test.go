package config

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/remotes"
	"github.com/llitfkitfk/containerd/remotes/docker"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// mapLabels keeps a local store's labels in memory.
type mapLabels struct {
	mu sync.Mutex
	m  map[digest.Digest]map[string]string
}

func (l *mapLabels) Get(d digest.Digest) (map[string]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.m[d]), nil
}

func (l *mapLabels) Set(d digest.Digest, labels map[string]string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[d] = maps.Clone(labels)
	return nil
}

func (l *mapLabels) Update(d digest.Digest, labels map[string]string) (map[string]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m[d] == nil {
		l.m[d] = map[string]string{}
	}
	for k, v := range labels {
		if v == "" {
			delete(l.m[d], k)
		} else {
			l.m[d][k] = v
		}
	}
	return maps.Clone(l.m[d]), nil
}

func labeledStore(t *testing.T) content.Store {
	s, err := local.NewLabeledStore(t.TempDir(), &mapLabels{m: map[digest.Digest]map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// recorder notes the requests a client makes and their answers.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	log  []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		r.log = append(r.log, req.Method+" "+req.URL.RequestURI()+" "+resp.Status)
		r.mu.Unlock()
	}
	return resp, err
}

func (r *recorder) find(substrs ...string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.log {
		ok := true
		for _, sub := range substrs {
			ok = ok && strings.Contains(s, sub)
		}
		if ok {
			n++
		}
	}
	return n
}

// TestRealRegistry pushes an image to docker-registry and pulls it back
// through hosts made by ConfigureHosts, plain and with basic auth.
func TestRealRegistry(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts testutil.RegistryOptions
	}{
		{"plain", testutil.RegistryOptions{}},
		{"basic auth", testutil.RegistryOptions{User: "alice", Password: "s3cret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := testutil.StartRegistry(t, tc.opts)
			ctx := context.Background()
			img, err := testutil.NewImage(testutil.HostPlatform(), ocispec.ImageConfig{Cmd: []string{"/hello"}},
				testutil.TarLayer(testutil.Layer{"hello": strings.Repeat("world ", 100_000)}),
				testutil.TarLayer(testutil.Layer{"etc/": "", "etc/motd": "hi"}))
			if err != nil {
				t.Fatal(err)
			}
			src := labeledStore(t)
			for d, b := range img.Blobs {
				if err := content.WriteBlob(ctx, src, "test-"+d.Encoded(), bytes.NewReader(b), ocispec.Descriptor{Digest: d, Size: int64(len(b))}); err != nil {
					t.Fatal(err)
				}
			}

			rec := &recorder{}
			hosts := ConfigureHosts(ctx, HostOptions{
				Credentials: func(host string) (string, string, error) { return tc.opts.User, tc.opts.Password, nil },
				UpdateClient: func(c *http.Client) error {
					rec.next = c.Transport
					c.Transport = rec
					return nil
				},
			})
			resolver := docker.NewResolver(docker.ResolverOptions{Hosts: hosts})
			ref := reg.Ref("test/img", "v1")
			pusher, err := resolver.Pusher(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if err := remotes.PushContent(ctx, pusher, img.Root, src, nil, nil, nil); err != nil {
				t.Fatal(err)
			}
			if got, err := reg.ManifestDigest("test/img", "v1"); err != nil || got != img.Root.Digest {
				t.Fatalf("registry's v1: %s %v, want %s", got, err, img.Root.Digest)
			}

			// Pull it back into an empty store.
			_, desc, err := resolver.Resolve(ctx, ref)
			if err != nil || desc.Digest != img.Root.Digest || desc.Size != img.Root.Size {
				t.Fatalf("Resolve: %+v %v", desc, err)
			}
			fetcher, err := resolver.Fetcher(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			dst := labeledStore(t)
			h := images.Handlers(remotes.FetchHandler(dst, fetcher), images.ChildrenHandler(dst))
			if err := images.Dispatch(ctx, h, nil, desc); err != nil {
				t.Fatal(err)
			}
			for d, b := range img.Blobs {
				got, err := content.ReadBlob(ctx, dst, ocispec.Descriptor{Digest: d, Size: int64(len(b))})
				if err != nil || !bytes.Equal(got, b) {
					t.Fatalf("pulled %s: %d bytes, %v", d, len(got), err)
				}
			}

			// A layer labelled as coming from test/img is mounted, not
			// uploaded, when pushed to test/copy.
			var m ocispec.Manifest
			mustJSON(t, img.Blobs[img.Root.Digest], &m)
			layer := m.Layers[0]
			key := images.LabelDistributionSource + "." + reg.Host
			if _, err := src.Update(ctx, content.Info{Digest: layer.Digest, Labels: map[string]string{key: "test/img"}}, "labels."+key); err != nil {
				t.Fatal(err)
			}
			pusher, _ = resolver.Pusher(ctx, reg.Ref("test/copy", "v1"))
			if err := remotes.PushContent(ctx, pusher, img.Root, src, nil, nil, nil); err != nil {
				t.Fatal(err)
			}
			if rec.find("POST /v2/test/copy/blobs/uploads/?from=test%2Fimg&mount="+url.QueryEscape(layer.Digest.String()), "201") != 1 {
				t.Fatalf("layer not mounted: %q", rec.log)
			}
			if rec.find("PUT /v2/test/copy/blobs/uploads/", "digest="+url.QueryEscape(layer.Digest.String())) != 0 {
				t.Fatalf("mounted layer uploaded too: %q", rec.log)
			}
			if got, err := reg.ManifestDigest("test/copy", "v1"); err != nil || got != img.Root.Digest {
				t.Fatalf("registry's copy v1: %s %v", got, err)
			}

			if tc.opts.User == "" {
				return
			}
			// Wrong password: a clear refusal.
			bad := docker.NewResolver(docker.ResolverOptions{Hosts: ConfigureHosts(ctx, HostOptions{
				Credentials: func(string) (string, string, error) { return "alice", "wrong", nil },
			})})
			_, _, err = bad.Resolve(ctx, ref)
			if !errdefs.IsUnauthenticated(err) || !strings.Contains(err.Error(), "authorization failed for "+reg.Host) {
				t.Fatalf("wrong password: %v", err)
			}
		})
	}
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
