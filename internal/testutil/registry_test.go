package testutil

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

// Each mode of the test registry takes a pushed image and answers for it
// with the digest pushed; the authenticated one refuses a stranger.
func TestRegistryModes(t *testing.T) {
	img, err := BusyboxImage(Layer{"hello": "world\n"})
	if err != nil {
		t.Fatal(err)
	}
	idx, host, err := MultiPlatformImage()
	if err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string]RegistryOptions{
		"plain": {},
		"auth":  {User: "user", Password: "pass"},
		"tls":   {TLS: true},
	} {
		t.Run(name, func(t *testing.T) {
			r := StartRegistry(t, opts)
			if err := r.Push("test/busybox", "v1", img); err != nil {
				t.Fatal(err)
			}
			if got, err := r.ManifestDigest("test/busybox", "v1"); err != nil || got != img.Root.Digest {
				t.Fatalf("digest of pushed image: %v %v, want %v", got, err, img.Root.Digest)
			}
			if err := r.Push("test/multi", "latest", idx); err != nil {
				t.Fatal(err)
			}
			if got, err := r.ManifestDigest("test/multi", host.Digest.String()); err != nil || got != host.Digest {
				t.Fatalf("host manifest in index: %v %v", got, err)
			}
			if opts.User != "" {
				resp, err := r.Client.Get(r.URL + "/v2/test/busybox/manifests/v1")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("without credentials: %s, want 401", resp.Status)
				}
			}
		})
	}
}

// The proxy breaks a blob as each fault says, and passes it otherwise.
func TestFaultProxy(t *testing.T) {
	r := StartRegistry(t, RegistryOptions{User: "user", Password: "pass"})
	img, err := BusyboxImage(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Push("test/p", "v1", img); err != nil {
		t.Fatal(err)
	}
	var layer digest.Digest
	for d, b := range img.Blobs {
		if len(b) > 1000 && d != img.Root.Digest {
			layer = d
		}
	}
	want := img.Blobs[layer]
	p := StartFaultProxy(t, r)
	get := func(rng string) (int, []byte, error) {
		req, _ := http.NewRequest(http.MethodGet, p.URL+"/v2/test/p/blobs/"+layer.String(), nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	// The proxy adds the registry's credentials itself.
	if code, b, err := get(""); err != nil || code != 200 || !bytes.Equal(b, want) {
		t.Fatalf("passed through: %d, %d bytes, %v", code, len(b), err)
	}
	p.Set(layer.String(), FaultWrongDigest)
	if _, b, err := get(""); err != nil || len(b) != len(want) || bytes.Equal(b, want) {
		t.Fatalf("wrong digest: %d bytes, %v", len(b), err)
	}
	p.Set(layer.String(), FaultTruncate)
	if _, b, err := get(""); err != nil || len(b) != len(want)/2 {
		t.Fatalf("truncated: %d bytes of %d, %v", len(b), len(want), err)
	}
	p.Set(layer.String(), FaultDropOnce)
	if _, b, err := get(""); !errors.Is(err, io.ErrUnexpectedEOF) || len(b) != len(want)/2 {
		t.Fatalf("dropped: %d bytes of %d, %v", len(b), len(want), err)
	}
	if code, b, err := get("bytes=10-"); err != nil || code != http.StatusPartialContent || !bytes.Equal(b, want[10:]) {
		t.Fatalf("resumed after the drop: %d, %d bytes, %v", code, len(b), err)
	}
	reqs := p.Requests()
	if last := reqs[len(reqs)-1]; last.Range != "bytes=10-" || last.Fault != "" {
		t.Fatalf("last request recorded as %+v", last)
	}
	p.Set(layer.String(), FaultUnauthorized)
	if code, _, err := get(""); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("unauthorized: %d, %v", code, err)
	}
}
