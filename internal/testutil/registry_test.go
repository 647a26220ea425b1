package testutil

import (
	"net/http"
	"testing"
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
