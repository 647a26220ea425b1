package client

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/images/archive"
	"github.com/llitfkitfk/containerd/internal/testutil"
)

func TestImportNames(t *testing.T) {
	m := func(a map[string]string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("m"), Size: 1, Annotations: a}
	}
	dref := func(d digest.Digest) string { return "example.com/by@" + d.String() }
	byDigest := dref(digest.FromString("m"))
	for _, c := range []struct {
		what string
		desc ocispec.Descriptor
		cfg  ImportConfig
		want []string
	}{
		{"containerd's name is taken as it is, whatever the translator says",
			m(map[string]string{archive.AnnotationImageName: "docker.io/library/a:1", archive.AnnotationRefName: "1"}),
			ImportConfig{ImageRefTranslator: archive.FilterRefPrefix("example.com/other")},
			[]string{"docker.io/library/a:1"}},
		{"an OCI tag goes through the translator",
			m(map[string]string{archive.AnnotationRefName: "1.0"}),
			ImportConfig{ImageRefTranslator: archive.AddRefPrefix("example.com/app")},
			[]string{"example.com/app:1.0"}},
		{"an OCI name without a translator is taken as it is",
			m(map[string]string{archive.AnnotationRefName: "1.0"}), ImportConfig{}, []string{"1.0"}},
		{"a translator's empty answer names nothing",
			m(map[string]string{archive.AnnotationRefName: "example.org/x:1"}),
			ImportConfig{ImageRefTranslator: archive.FilterRefPrefix("example.com/app")}, nil},
		{"no names, no digest ref", m(nil), ImportConfig{}, nil},
		{"a digest ref for an unnamed manifest", m(nil), ImportConfig{DigestRef: dref}, []string{byDigest}},
		{"a digest ref beside the name",
			m(map[string]string{archive.AnnotationImageName: "example.com/n:1"}),
			ImportConfig{DigestRef: dref}, []string{"example.com/n:1", byDigest}},
		{"skipped digest ref of a named manifest",
			m(map[string]string{archive.AnnotationImageName: "example.com/n:1"}),
			ImportConfig{DigestRef: dref, SkipDigestRef: func(name string) bool { return name != "" }},
			[]string{"example.com/n:1"}},
		{"a referrer gets no digest ref",
			m(map[string]string{annotationManifestSubject: "sha256:abc"}),
			ImportConfig{DigestRef: dref}, nil},
	} {
		var got []string
		for _, img := range importNames(c.desc, c.cfg) {
			if img.Target.Digest != c.desc.Digest {
				t.Errorf("%s: %s targets %s", c.what, img.Name, img.Target.Digest)
			}
			got = append(got, img.Name)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: names %q, want %q", c.what, got, c.want)
		}
	}
}

func TestImportInto(t *testing.T) {
	ctx := testCtx()
	index, host, other := twoPlatforms(t)
	entry := index.Root
	entry.Annotations = map[string]string{archive.AnnotationRefName: "v1"}
	cs, is := newContentStore(t), newMemImages()

	imgs, err := importInto(ctx, cs, is, layoutTar(t, []ocispec.Descriptor{entry}, index.Blobs), ImportConfig{
		ImageRefTranslator: archive.AddRefPrefix("example.com/app"),
		DigestRef:          func(d digest.Digest) string { return "import@" + d.String() },
		IndexName:          "example.com/whole",
		Labels:             map[string]string{"k": "v"},
		PlatformMatcher:    platforms.Only(host.Platform),
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, img := range imgs {
		names = append(names, img.Name)
		if img.Labels["k"] != "v" {
			t.Errorf("%s has labels %v", img.Name, img.Labels)
		}
	}
	want := []string{"example.com/whole", "example.com/app:v1", "import@" + index.Root.Digest.String()}
	if !slices.Equal(names, want) {
		t.Fatalf("imported %q, want %q", names, want)
	}
	if got, _ := is.Get(ctx, "example.com/app:v1"); got.Target.Digest != index.Root.Digest {
		t.Fatalf("stored target %s, want the index %s", got.Target.Digest, index.Root.Digest)
	}
	// The host's manifest is kept by a label of the index; the other
	// platform's is in the store (the archive had it) but nothing keeps it.
	info, err := cs.Info(ctx, index.Root.Digest)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for k, v := range info.Labels {
		if strings.HasPrefix(k, images.LabelGCRefContent) {
			kept = append(kept, v)
		}
	}
	if !slices.Equal(kept, []string{host.Root.Digest.String()}) {
		t.Errorf("index labels keep %v, want only the host's manifest %s (not %s)", kept, host.Root.Digest, other.Root.Digest)
	}

	// Importing again points the existing names at the new target.
	entry2 := host.Root
	entry2.Annotations = map[string]string{archive.AnnotationRefName: "v1"}
	if _, err := importInto(ctx, cs, is, layoutTar(t, []ocispec.Descriptor{entry2}, host.Blobs), ImportConfig{
		ImageRefTranslator: archive.AddRefPrefix("example.com/app"),
	}); err != nil {
		t.Fatal(err)
	}
	got, _ := is.Get(ctx, "example.com/app:v1")
	if got.Target.Digest != host.Root.Digest || got.Labels["k"] != "v" {
		t.Errorf("re-imported image %+v, want target %s and its labels kept", got, host.Root.Digest)
	}
}

func TestImportPlatformNotInArchive(t *testing.T) {
	ctx := testCtx()
	_, host, _ := twoPlatforms(t)
	entry := host.Root
	entry.Platform = &host.Platform
	entry.Annotations = map[string]string{archive.AnnotationImageName: "example.com/one:1"}
	is := newMemImages()
	_, err := importInto(ctx, newContentStore(t), is, layoutTar(t, []ocispec.Descriptor{entry}, host.Blobs), ImportConfig{
		PlatformMatcher: platforms.Only(ocispec.Platform{OS: "windows", Architecture: "s390x"}),
	})
	if !errdefs.IsNotFound(err) {
		t.Fatalf("import for a platform the archive lacks: %v, want NotFound", err)
	}
	if l, _ := is.List(ctx); len(l) != 0 {
		t.Errorf("a failed import recorded %v", l)
	}
	// All platforms take it.
	if _, err := importInto(ctx, newContentStore(t), is, layoutTar(t, []ocispec.Descriptor{entry}, host.Blobs), ImportConfig{AllPlatforms: true}); err != nil {
		t.Fatal(err)
	}
}

func TestImportMissingBlob(t *testing.T) {
	ctx := testCtx()
	_, host, _ := twoPlatforms(t)
	var m ocispec.Manifest
	if err := json.Unmarshal(host.Blobs[host.Root.Digest], &m); err != nil {
		t.Fatal(err)
	}
	blobs := maps.Clone(host.Blobs)
	delete(blobs, m.Config.Digest)
	entry := host.Root
	entry.Annotations = map[string]string{archive.AnnotationImageName: "example.com/broken:1"}
	is := newMemImages()
	_, err := importInto(ctx, newContentStore(t), is, layoutTar(t, []ocispec.Descriptor{entry}, blobs), ImportConfig{})
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), m.Config.Digest.String()) {
		t.Fatalf("importing an archive without its config: %v, want NotFound naming it", err)
	}
	if l, _ := is.List(ctx); len(l) != 0 {
		t.Errorf("a failed import recorded %v", l)
	}
}

func TestImportSkipMissingAndDiscardLayers(t *testing.T) {
	ctx := testCtx()
	_, host, _ := twoPlatforms(t)
	m := imgManifestOf(t, host)
	blobs := maps.Clone(host.Blobs)
	delete(blobs, m.Layers[1].Digest)
	entry := host.Root
	entry.Annotations = map[string]string{archive.AnnotationImageName: "example.com/partial:1"}
	cs := newContentStore(t)
	imgs, err := importInto(ctx, cs, newMemImages(), layoutTar(t, []ocispec.Descriptor{entry}, blobs), ImportConfig{SkipMissing: true, DiscardLayers: true})
	if err != nil || len(imgs) != 1 {
		t.Fatalf("import skipping missing blobs: %v, %v", imgs, err)
	}
	info, err := cs.Info(ctx, host.Root.Digest)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range info.Labels {
		if strings.HasPrefix(k, images.LabelGCRefContent+".l.") {
			t.Errorf("layer %s kept by %s with layers discarded", v, k)
		}
	}
	if info.Labels[images.LabelGCRefContent+".config"] != m.Config.Digest.String() {
		t.Errorf("the config is not kept: %v", info.Labels)
	}
}

func imgManifestOf(t *testing.T, img testutil.Image) ocispec.Manifest {
	t.Helper()
	var m ocispec.Manifest
	readJSONBlob(t, img.Blobs[img.Root.Digest], &m)
	return m
}
