package images

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/platforms"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func newStore(t *testing.T) content.Store {
	t.Helper()
	s, err := local.NewStore(filepath.Join(t.TempDir(), "content"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func put(t *testing.T, s content.Store, mt string, p []byte) ocispec.Descriptor {
	t.Helper()
	desc := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(p), Size: int64(len(p))}
	if err := content.WriteBlob(context.Background(), s, "t-"+desc.Digest.String(), bytes.NewReader(p), desc); err != nil {
		t.Fatal(err)
	}
	return desc
}

func putJSON(t *testing.T, s content.Store, mt string, v any) ocispec.Descriptor {
	t.Helper()
	p, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return put(t, s, mt, p)
}

// image writes a one-layer image for p (its config declaring p) and
// returns its manifest's descriptor, without a platform.
func image(t *testing.T, s content.Store, p ocispec.Platform, diffID string) ocispec.Descriptor {
	t.Helper()
	layer := put(t, s, ocispec.MediaTypeImageLayer, []byte("layer of "+platforms.Format(p)))
	config := putJSON(t, s, ocispec.MediaTypeImageConfig, ocispec.Image{
		Platform: p,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString(diffID)}},
	})
	return putJSON(t, s, ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config,
		Layers:    []ocispec.Descriptor{layer},
	})
}

func index(t *testing.T, s content.Store, manifests ...ocispec.Descriptor) ocispec.Descriptor {
	t.Helper()
	return putJSON(t, s, ocispec.MediaTypeImageIndex, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: manifests,
	})
}

func withPlatform(d ocispec.Descriptor, p string) ocispec.Descriptor {
	pl := platforms.MustParse(p)
	d.Platform = &pl
	return d
}

// multiPlatform builds an index over arm/v7, arm/v6, arm64, amd64 (in that
// order, so that list order and preference differ) and one manifest the
// index gives no platform, whose config says linux/s390x.
func multiPlatform(t *testing.T, s content.Store) (ocispec.Descriptor, map[string]ocispec.Descriptor) {
	byName := map[string]ocispec.Descriptor{}
	var list []ocispec.Descriptor
	for _, p := range []string{"linux/arm/v7", "linux/arm/v6", "linux/arm64", "linux/amd64"} {
		d := withPlatform(image(t, s, platforms.MustParse(p), p), p)
		byName[p] = d
		list = append(list, d)
	}
	bare := image(t, s, platforms.MustParse("linux/s390x"), "linux/s390x")
	byName["linux/s390x"] = bare
	list = append(list, bare)
	return index(t, s, list...), byName
}

func TestManifestPlatformSelection(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	idx, by := multiPlatform(t, s)

	for _, tc := range []struct {
		want, pick string
	}{
		{"linux/arm64", "linux/arm64"},
		{"linux/amd64", "linux/amd64"},
		{"linux/arm/v7", "linux/arm/v7"},
		{"linux/arm/v6", "linux/arm/v6"},
		// A v8 machine runs v7 code: the best it can get here.
		{"linux/arm/v8", "linux/arm/v7"},
		// Known only from its config.
		{"linux/s390x", "linux/s390x"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			m, err := Manifest(ctx, s, idx, platforms.Only(platforms.MustParse(tc.want)))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := ConfigPlatform(ctx, s, m.Config)
			if err != nil {
				t.Fatal(err)
			}
			if got := platforms.Format(cfg); got != tc.pick {
				t.Errorf("picked %s, want %s", got, tc.pick)
			}
			c, err := Config(ctx, s, idx, platforms.Only(platforms.MustParse(tc.want)))
			if err != nil || c.Digest != m.Config.Digest {
				t.Errorf("Config = %v, %v; want %s", c.Digest, err, m.Config.Digest)
			}
			diffs, err := RootFS(ctx, s, c)
			if err != nil || len(diffs) != 1 || diffs[0] != digest.FromString(tc.pick) {
				t.Errorf("RootFS = %v, %v", diffs, err)
			}
		})
	}

	t.Run("not arm/v7 for arm64 when arm64 is there", func(t *testing.T) {
		// arm64 matches the 32-bit arm variants too; arm64 itself must
		// rank first although the index lists them before it.
		m, err := Manifest(ctx, s, idx, platforms.Only(platforms.MustParse("linux/arm64")))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := Manifest(ctx, s, by["linux/arm64"], nil)
		if m.Config.Digest != want.Config.Digest {
			t.Errorf("arm64 got config %s, want %s", m.Config.Digest, want.Config.Digest)
		}
	})

	t.Run("no match names the platform", func(t *testing.T) {
		_, err := Manifest(ctx, s, idx, OnlyPlatforms(platforms.MustParse("windows/amd64")))
		if !errdefs.IsNotFound(err) {
			t.Fatalf("err = %v, want NotFound", err)
		}
		for _, want := range []string{"windows/amd64", "linux/arm64", "linux/s390x"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %s", err, want)
			}
		}
	})

	t.Run("manifest named directly is taken whatever its platform", func(t *testing.T) {
		m, err := Manifest(ctx, s, by["linux/amd64"], platforms.Only(platforms.MustParse("linux/arm64")))
		if err != nil || len(m.Layers) != 1 {
			t.Fatalf("Manifest = %v, %v", m, err)
		}
	})

	t.Run("nested index", func(t *testing.T) {
		outer := index(t, s, idx)
		m, err := Manifest(ctx, s, outer, platforms.Only(platforms.MustParse("linux/s390x")))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := Manifest(ctx, s, by["linux/s390x"], nil)
		if m.Config.Digest != want.Config.Digest {
			t.Error("nested index: wrong manifest")
		}
	})

	t.Run("manifest that is an index", func(t *testing.T) {
		liar := idx
		liar.MediaType = ocispec.MediaTypeImageManifest
		if _, err := Manifest(ctx, s, liar, nil); !errdefs.IsInvalidArgument(err) {
			t.Errorf("err = %v, want InvalidArgument", err)
		}
	})
}

func TestPlatforms(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	idx, _ := multiPlatform(t, s)
	attest := withPlatform(put(t, s, ocispec.MediaTypeImageManifest, []byte("{}")), "unknown/unknown")
	idx2 := index(t, s, append(mustChildren(t, s, idx), attest)...)

	ps, err := Platforms(ctx, s, idx2)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, platforms.Format(p))
	}
	want := "linux/arm/v7 linux/arm/v6 linux/arm64 linux/amd64 linux/s390x"
	if strings.Join(got, " ") != want {
		t.Errorf("Platforms = %v, want %s", got, want)
	}
}

func mustChildren(t *testing.T, s content.Store, d ocispec.Descriptor) []ocispec.Descriptor {
	t.Helper()
	ch, err := Children(context.Background(), s, d)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestFilterAndLimit(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	idx, by := multiPlatform(t, s)
	arm := platforms.Only(platforms.MustParse("linux/arm/v7"))

	got, err := FilterPlatforms(ChildrenHandler(s), arm)(ctx, idx)
	if err != nil {
		t.Fatal(err)
	}
	// v7 and v6 match; the platform-less one is kept for its config to
	// decide.
	if len(got) != 3 || got[0].Digest != by["linux/arm/v7"].Digest || got[1].Digest != by["linux/arm/v6"].Digest || got[2].Platform != nil {
		t.Errorf("FilterPlatforms = %v", got)
	}

	arm64 := platforms.Only(platforms.MustParse("linux/arm64"))
	got, err = LimitManifests(FilterPlatforms(ChildrenHandler(s), arm64), arm64, 1)(ctx, idx)
	if err != nil || len(got) != 1 || got[0].Digest != by["linux/arm64"].Digest {
		t.Errorf("LimitManifests(1) = %v, %v; want arm64", got, err)
	}
	got, err = LimitManifests(FilterPlatforms(ChildrenHandler(s), arm64), arm64, 0)(ctx, idx)
	if err != nil || len(got) != 4 || got[0].Digest != by["linux/arm64"].Digest || got[3].Platform != nil {
		t.Errorf("LimitManifests(0) = %v, %v; want arm64 first, the bare one last", got, err)
	}

	win := platforms.Only(platforms.MustParse("windows/amd64"))
	idx2 := index(t, s, by["linux/amd64"])
	if _, err := LimitManifests(FilterPlatforms(ChildrenHandler(s), win), win, 1)(ctx, idx2); !errdefs.IsNotFound(err) {
		t.Errorf("LimitManifests with nothing left: err = %v, want NotFound", err)
	}
	// Not an index: untouched.
	got, err = LimitManifests(ChildrenHandler(s), win, 1)(ctx, by["linux/amd64"])
	if err != nil || len(got) != 2 {
		t.Errorf("LimitManifests on a manifest = %v, %v", got, err)
	}
}

// labelRecorder is a content.Manager that records label updates.
type labelRecorder struct {
	content.Manager
	mu      sync.Mutex
	updates map[digest.Digest]content.Info
	fields  map[digest.Digest][]string
}

func (l *labelRecorder) Update(_ context.Context, info content.Info, fields ...string) (content.Info, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.updates[info.Digest] = info
	l.fields[info.Digest] = fields
	return info, nil
}

func TestSetChildrenLabels(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	idx, by := multiPlatform(t, s)
	outer := index(t, s, idx, by["linux/amd64"])

	rec := &labelRecorder{updates: map[digest.Digest]content.Info{}, fields: map[digest.Digest][]string{}}
	if err := Walk(ctx, SetChildrenLabels(rec, ChildrenHandler(s)), outer); err != nil {
		t.Fatal(err)
	}

	// The outer index: a nested index (bare ".0") and a manifest (".m.0").
	wantOuter := map[string]string{
		"containerd.io/gc.ref.content.0":   idx.Digest.String(),
		"containerd.io/gc.ref.content.m.0": by["linux/amd64"].Digest.String(),
	}
	checkLabels(t, rec, outer.Digest, wantOuter)

	wantIdx := map[string]string{}
	for i, p := range []string{"linux/arm/v7", "linux/arm/v6", "linux/arm64", "linux/amd64", "linux/s390x"} {
		wantIdx[fmt.Sprintf("containerd.io/gc.ref.content.m.%d", i)] = by[p].Digest.String()
	}
	checkLabels(t, rec, idx.Digest, wantIdx)

	m, _ := Manifest(ctx, s, by["linux/arm64"], nil)
	checkLabels(t, rec, by["linux/arm64"].Digest, map[string]string{
		"containerd.io/gc.ref.content.config": m.Config.Digest.String(),
		"containerd.io/gc.ref.content.l.0":    m.Layers[0].Digest.String(),
	})
	if _, ok := rec.updates[m.Layers[0].Digest]; ok {
		t.Error("a layer, which has no children, was labelled")
	}

	// Several layers and the filter that leaves them out.
	l := []ocispec.Descriptor{{MediaType: MediaTypeDockerSchema2LayerGzip, Digest: digest.FromString("a")}, {MediaType: ocispec.MediaTypeImageLayerZstd, Digest: digest.FromString("b")}}
	got := ChildrenLabels(append([]ocispec.Descriptor{{MediaType: MediaTypeDockerSchema2Config, Digest: digest.FromString("c")}}, l...), nil)
	want := map[string]string{
		"containerd.io/gc.ref.content.config": digest.FromString("c").String(),
		"containerd.io/gc.ref.content.l.0":    digest.FromString("a").String(),
		"containerd.io/gc.ref.content.l.1":    digest.FromString("b").String(),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ChildrenLabels = %v, want %v", got, want)
	}
}

func checkLabels(t *testing.T, rec *labelRecorder, d digest.Digest, want map[string]string) {
	t.Helper()
	info, ok := rec.updates[d]
	if !ok {
		t.Fatalf("%s not labelled", d)
	}
	if fmt.Sprint(info.Labels) != fmt.Sprint(want) {
		t.Errorf("labels of %s = %v, want %v", d, info.Labels, want)
	}
	// Only the labels named: the others a blob carries are kept.
	if len(rec.fields[d]) != len(want) {
		t.Errorf("fields = %v", rec.fields[d])
	}
	for _, f := range rec.fields[d] {
		if _, ok := want[strings.TrimPrefix(f, "labels.")]; !ok {
			t.Errorf("field %q updated", f)
		}
	}
}

func TestDispatchNamesDescriptorOnce(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	idx, by := multiPlatform(t, s)
	bad := by["linux/arm64"].Digest
	boom := errors.New("boom")

	var mu sync.Mutex
	seen := 0
	err := Dispatch(ctx, HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		mu.Lock()
		seen++
		mu.Unlock()
		if d.Digest == bad {
			return nil, boom
		}
		return Children(ctx, s, d)
	}), nil, idx)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if n := strings.Count(err.Error(), bad.String()); n != 1 {
		t.Errorf("error %q names the descriptor %d times", err, n)
	}

	// A handler that names it already gets no second prefix.
	err = Dispatch(ctx, HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if d.Digest == bad {
			return nil, fmt.Errorf("fetch %s: %w", d.Digest, boom)
		}
		return Children(ctx, s, d)
	}), nil, idx)
	if n := strings.Count(err.Error(), bad.String()); n != 1 {
		t.Errorf("error %q names the descriptor %d times", err, n)
	}
}
