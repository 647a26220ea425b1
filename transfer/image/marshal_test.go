package image

import (
	"context"
	"reflect"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// What a client marshals, the daemon unmarshals to the same store.
func TestMarshalRoundTrip(t *testing.T) {
	arm := ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	win := ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763", OSFeatures: []string{"win32k"}}
	for _, c := range []struct {
		name  string
		store *Store
	}{
		{"name only", NewStore("docker.io/library/alpine:latest")},
		{"pull", NewStore("example.com/app:v1",
			WithPlatforms(arm, win),
			WithUnpack(arm, "overlayfs"),
			WithUnpack(win, ""),
			WithAllMetadata,
			WithManifestLimit(3),
			WithImageLabels(map[string]string{"k": "v", "empty": ""}))},
		{"import", NewStore("index", WithDigestRef("import-2026-12-05", true, true), WithNamedPrefix("example.com/base", false))},
		{"export", NewStore("", WithExtraReference("a:v1"), WithExtraReference("b:v2"))},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := c.store.MarshalAny(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if a.GetTypeUrl() != "containerd.types.transfer.ImageStore" {
				t.Fatalf("type URL %q", a.GetTypeUrl())
			}
			var daemon Store
			if err := daemon.UnmarshalAny(context.Background(), nil, a); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&daemon, c.store) {
				t.Fatalf("daemon's store\n%+v\nclient's\n%+v", daemon, *c.store)
			}
		})
	}
}

// Options copy what they are given: a caller changing its map afterwards
// does not change the store.
func TestWithImageLabelsCopies(t *testing.T) {
	labels := map[string]string{"k": "v"}
	s := NewStore("x", WithImageLabels(labels))
	labels["k"] = "changed"
	if s.Labels()["k"] != "v" {
		t.Fatalf("labels %v", s.Labels())
	}
}
