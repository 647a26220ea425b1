package image

import (
	"context"
	"reflect"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/api/types"
	transfertypes "github.com/llitfkitfk/containerd/api/types/transfer"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/images/archive"
	"github.com/llitfkitfk/containerd/streaming"
	"github.com/llitfkitfk/containerd/transfer"
	"github.com/llitfkitfk/containerd/transfer/plugins"
)

// memStore is an images.Store in a map.
type memStore struct {
	images  map[string]images.Image
	updates int
}

func newMemStore() *memStore { return &memStore{images: map[string]images.Image{}} }

func (m *memStore) Get(_ context.Context, name string) (images.Image, error) {
	img, ok := m.images[name]
	if !ok {
		return images.Image{}, errdefs.ErrNotFound
	}
	return img, nil
}
func (m *memStore) List(context.Context, ...string) ([]images.Image, error) { return nil, nil }
func (m *memStore) Create(_ context.Context, img images.Image) (images.Image, error) {
	if _, ok := m.images[img.Name]; ok {
		return images.Image{}, errdefs.ErrAlreadyExists
	}
	m.images[img.Name] = img
	return img, nil
}
func (m *memStore) Update(_ context.Context, img images.Image, _ ...string) (images.Image, error) {
	if _, ok := m.images[img.Name]; !ok {
		return images.Image{}, errdefs.ErrNotFound
	}
	m.updates++
	m.images[img.Name] = img
	return img, nil
}
func (m *memStore) Delete(_ context.Context, name string, _ ...images.DeleteOpt) error {
	delete(m.images, name)
	return nil
}

const dgst = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

func desc(annotations map[string]string) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: dgst, Size: 10, Annotations: annotations}
}

func names(imgs []images.Image) string {
	var n []string
	for _, img := range imgs {
		n = append(n, img.Name)
	}
	return strings.Join(n, " ")
}

func unmarshal(t *testing.T, m *transfertypes.ImageStore) *Store {
	t.Helper()
	a, err := anypb.New(m) // a prefixed type URL must resolve too
	if err != nil {
		t.Fatal(err)
	}
	obj, err := plugins.Unmarshal(context.Background(), streaming.NewManager(), a)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := obj.(*Store)
	if !ok {
		t.Fatalf("unmarshalled into %T", obj)
	}
	return s
}

func TestUnmarshal(t *testing.T) {
	s := unmarshal(t, &transfertypes.ImageStore{
		Name:          "docker.io/library/a:1",
		Labels:        map[string]string{"k": "v"},
		Platforms:     []*types.Platform{{Os: "linux", Architecture: "arm64", Variant: "v8"}},
		AllMetadata:   true,
		ManifestLimit: 2,
		ExtraReferences: []*transfertypes.ImageReference{
			{Name: "example.com/b", IsPrefix: true, AllowOverwrite: true, AddDigest: true, SkipNamedDigest: true},
		},
		Unpacks: []*transfertypes.UnpackConfiguration{{Platform: &types.Platform{Os: "linux", Architecture: "amd64"}, Snapshotter: "overlayfs"}},
	})
	want := &Store{
		imageName:       "docker.io/library/a:1",
		imageLabels:     map[string]string{"k": "v"},
		platforms:       []ocispec.Platform{{OS: "linux", Architecture: "arm64", Variant: "v8"}},
		allMetadata:     true,
		manifestLimit:   2,
		extraReferences: []Reference{{Name: "example.com/b", IsPrefix: true, AllowOverwrite: true, AddDigest: true, SkipNamedDigest: true}},
		unpacks:         []transfer.UnpackConfiguration{{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, Snapshotter: "overlayfs"}},
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got %+v\nwant %+v", s, want)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	a, _ := streaming.MarshalAny(&transfertypes.ImageStore{ExtraReferences: []*transfertypes.ImageReference{{}}})
	if _, err := plugins.Unmarshal(context.Background(), streaming.NewManager(), a); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("nameless reference: %v", err)
	}
	a.Value = []byte{0xff, 0xff}
	if _, err := plugins.Unmarshal(context.Background(), streaming.NewManager(), a); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("garbage: %v", err)
	}
}

// A pull stores the name and the full extra names, and updates what
// exists; extra names are labelled to go with the main one.
func TestStoreNamed(t *testing.T) {
	ctx := context.Background()
	st := newMemStore()
	st.images["example.com/extra:1"] = images.Image{Name: "example.com/extra:1"}
	s := &Store{
		imageName:   "example.com/a:1",
		imageLabels: map[string]string{"k": "v"},
		extraReferences: []Reference{
			{Name: "example.com/extra:1"},
			{Name: "example.com/skipped", IsPrefix: true},
			{Name: "example.com/dig", IsPrefix: true, AddDigest: true, SkipNamedDigest: true},
		},
	}
	imgs, err := s.Store(ctx, desc(nil), st)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(imgs), "example.com/a:1 example.com/extra:1 example.com/dig@"+dgst; got != want {
		t.Fatalf("stored %q, want %q", got, want)
	}
	if st.updates != 1 {
		t.Fatalf("%d updates, want 1 (the existing extra name)", st.updates)
	}
	if l := st.images["example.com/a:1"].Labels; l["k"] != "v" || l[labelGCBrefImage] != "" {
		t.Fatalf("main image labels %v", l)
	}
	if l := st.images["example.com/extra:1"].Labels; l["k"] != "v" || l[labelGCBrefImage] != "example.com/a:1" || l[labelGCExpire] == "" {
		t.Fatalf("extra image labels %v", l)
	}
}

func TestStoreNoName(t *testing.T) {
	if _, err := (&Store{}).Store(context.Background(), desc(nil), newMemStore()); !errdefs.IsNotFound(err) {
		t.Fatalf("Store with no name: %v", err)
	}
}

// An import names each manifest from the archive's annotations through
// the prefix references.
func TestStoreFromAnnotations(t *testing.T) {
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		ref         Reference
		want        string
	}{
		{"tag added to prefix", map[string]string{ocispec.AnnotationRefName: "v1"},
			Reference{Name: "example.com/app", IsPrefix: true}, "example.com/app:v1"},
		{"full name under prefix", map[string]string{archive.AnnotationImageName: "example.com/app:v2"},
			Reference{Name: "example.com/app", IsPrefix: true}, "example.com/app:v2"},
		{"full name elsewhere refused", map[string]string{archive.AnnotationImageName: "other.com/x:1"},
			Reference{Name: "example.com/app", IsPrefix: true}, ""},
		{"longer repository is not under prefix", map[string]string{archive.AnnotationImageName: "example.com/application:1"},
			Reference{Name: "example.com/app", IsPrefix: true}, ""},
		{"full name elsewhere allowed by overwrite", map[string]string{archive.AnnotationImageName: "other.com/x:1"},
			Reference{Name: "example.com/app", IsPrefix: true, AllowOverwrite: true}, "other.com/x:1"},
		{"image name must be full", map[string]string{archive.AnnotationImageName: "short"},
			Reference{Name: "example.com/app", IsPrefix: true, AllowOverwrite: true}, ""},
		{"digest added", map[string]string{ocispec.AnnotationRefName: "v1"},
			Reference{Name: "example.com/app", IsPrefix: true, AddDigest: true}, "example.com/app:v1 example.com/app@" + dgst},
		{"digest skipped when named", map[string]string{ocispec.AnnotationRefName: "v1"},
			Reference{Name: "example.com/app", IsPrefix: true, AddDigest: true, SkipNamedDigest: true}, "example.com/app:v1"},
		{"digest only when unnamed", map[string]string{},
			Reference{Name: "example.com/app", IsPrefix: true, AddDigest: true, SkipNamedDigest: true}, "example.com/app@" + dgst},
		{"full references ignored", map[string]string{ocispec.AnnotationRefName: "v1"},
			Reference{Name: "example.com/full:1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			annotations := map[string]string{AnnotationRefSource: "annotation"}
			for k, v := range tc.annotations {
				annotations[k] = v
			}
			s := &Store{imageName: "ignored/for:import", extraReferences: []Reference{tc.ref}}
			imgs, err := s.Store(context.Background(), desc(annotations), newMemStore())
			if tc.want == "" {
				if !errdefs.IsNotFound(err) {
					t.Fatalf("got %q, %v; want no name", names(imgs), err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := names(imgs); got != tc.want {
				t.Fatalf("stored %q, want %q", got, tc.want)
			}
			for _, img := range imgs {
				if _, ok := img.Target.Annotations[AnnotationRefSource]; ok {
					t.Fatal("ref-source marker stored on the target")
				}
			}
			if _, ok := annotations[AnnotationRefSource]; !ok {
				t.Fatal("caller's annotations changed")
			}
		})
	}
}

func TestStoreUnknownRefSource(t *testing.T) {
	s := &Store{extraReferences: []Reference{{Name: "example.com/app", IsPrefix: true}}}
	_, err := s.Store(context.Background(), desc(map[string]string{AnnotationRefSource: "magic"}), newMemStore())
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("unknown ref source: %v", err)
	}
}

func TestLookup(t *testing.T) {
	ctx := context.Background()
	st := newMemStore()
	st.images["a"] = images.Image{Name: "a"}
	st.images["b"] = images.Image{Name: "b"}
	imgs, err := (&Store{imageName: "a", extraReferences: []Reference{{Name: "b"}}}).Lookup(ctx, st)
	if err != nil || names(imgs) != "a b" {
		t.Fatalf("Lookup: %q, %v", names(imgs), err)
	}
	if _, err := (&Store{imageName: "a", extraReferences: []Reference{{Name: "b", IsPrefix: true}}}).Lookup(ctx, st); !errdefs.IsNotImplemented(err) {
		t.Fatalf("prefix lookup: %v", err)
	}
	if _, err := (&Store{imageName: "missing"}).Lookup(ctx, st); !errdefs.IsNotFound(err) {
		t.Fatalf("missing image: %v", err)
	}
	if _, err := (&Store{}).Get(ctx, st); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Get without a name: %v", err)
	}
}

// With all_metadata, a manifest of an unselected platform keeps only its
// config.
func TestFilterLayersByPlatform(t *testing.T) {
	children := []ocispec.Descriptor{
		{MediaType: ocispec.MediaTypeImageConfig, Digest: "sha256:c"},
		{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: "sha256:l"},
	}
	h := filterLayersByPlatform(func(context.Context, ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		return children, nil
	}, platformMatcher("linux/amd64"))
	manifest := func(p string) ocispec.Descriptor {
		d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest}
		if p != "" {
			pl := ocispec.Platform{OS: "linux", Architecture: p}
			d.Platform = &pl
		}
		return d
	}
	for _, tc := range []struct {
		desc ocispec.Descriptor
		want int
	}{
		{manifest("amd64"), 2},
		{manifest("arm64"), 1},
		{manifest(""), 2},
	} {
		got, err := h(context.Background(), tc.desc)
		if err != nil || len(got) != tc.want {
			t.Errorf("%v: %d children (%v), want %d", tc.desc.Platform, len(got), err, tc.want)
		}
		if tc.want == 1 && got[0].MediaType != ocispec.MediaTypeImageConfig {
			t.Errorf("kept %s, want the config", got[0].MediaType)
		}
	}
}

type platformMatcher string

func (p platformMatcher) Match(pl ocispec.Platform) bool {
	return pl.OS+"/"+pl.Architecture == string(p)
}
