package metadata

import (
	"maps"
	"slices"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
)

func testImage(name string, target ocispec.Descriptor) images.Image {
	if target.MediaType == "application/octet-stream" {
		target.MediaType = ocispec.MediaTypeImageManifest
	}
	return images.Image{Name: name, Target: target}
}

func imageNames(list []images.Image) []string {
	var names []string
	for _, im := range list {
		names = append(names, im.Name)
	}
	return names
}

func TestImagesCRUD(t *testing.T) {
	db, _ := openTestDB(t)
	store := NewImageStore(db)
	ctx := nsContext("ns")

	target := ocispec.Descriptor{
		MediaType:   ocispec.MediaTypeImageIndex,
		Digest:      digest.FromString("index"),
		Size:        42,
		Annotations: map[string]string{"org.opencontainers.image.ref.name": "latest"},
	}
	in := images.Image{
		Name:      "docker.io/library/busybox:latest",
		Labels:    map[string]string{"a": "1"},
		Target:    target,
		CreatedAt: time.Unix(1, 0), // ignored
	}
	created, err := store.Create(ctx, in)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if time.Since(created.CreatedAt) > time.Minute || !created.UpdatedAt.Equal(created.CreatedAt) {
		t.Errorf("created times = %v, %v", created.CreatedAt, created.UpdatedAt)
	}
	got, err := store.Get(ctx, in.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != in.Name || got.Target.Digest != target.Digest || got.Target.MediaType != target.MediaType ||
		got.Target.Size != target.Size || !maps.Equal(got.Target.Annotations, target.Annotations) ||
		!maps.Equal(got.Labels, in.Labels) || !got.CreatedAt.Equal(created.CreatedAt) {
		t.Errorf("Get = %+v, want %+v", got, created)
	}

	if _, err := store.Create(ctx, in); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second Create = %v, want AlreadyExists", err)
	}
	if _, err := store.Get(nsContext("other"), in.Name); !errdefs.IsNotFound(err) {
		t.Errorf("Get in another namespace = %v, want NotFound", err)
	}
	if _, err := store.Get(ctx, "absent"); !errdefs.IsNotFound(err) {
		t.Errorf("Get of a missing image = %v, want NotFound", err)
	}

	if err := store.Delete(ctx, in.Name); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := store.Delete(ctx, in.Name); !errdefs.IsNotFound(err) {
		t.Errorf("second Delete = %v, want NotFound", err)
	}
	if db.dirty.Load() == 0 {
		t.Error("Delete did not mark the database dirty")
	}
}

func TestImagesInvalid(t *testing.T) {
	db, _ := openTestDB(t)
	store := NewImageStore(db)
	ctx := nsContext("ns")
	good := testImage("ok", ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("m"), Size: 1})

	for name, mutate := range map[string]func(*images.Image){
		"empty name":      func(im *images.Image) { im.Name = "" },
		"control char":    func(im *images.Image) { im.Name = "bad\nname" },
		"no digest":       func(im *images.Image) { im.Target.Digest = "" },
		"bad digest":      func(im *images.Image) { im.Target.Digest = "sha256:zz" },
		"no media type":   func(im *images.Image) { im.Target.MediaType = "" },
		"zero size":       func(im *images.Image) { im.Target.Size = 0 },
		"empty label key": func(im *images.Image) { im.Labels = map[string]string{"": "v"} },
	} {
		im := good
		mutate(&im)
		if _, err := store.Create(ctx, im); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Create with %s = %v, want InvalidArgument", name, err)
		}
	}
	if list, _ := store.List(ctx); len(list) != 0 {
		t.Errorf("invalid creates left %v", imageNames(list))
	}
	if _, err := store.Create(ctx, good); err != nil {
		t.Fatal(err)
	}
	bad := good
	bad.Target.Size = -1
	if _, err := store.Update(ctx, bad, "target"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Update to an invalid target = %v, want InvalidArgument", err)
	}
	if _, err := store.Update(ctx, good, "name"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Update of name = %v, want InvalidArgument", err)
	}
	if _, err := store.Update(ctx, images.Image{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Update without name = %v, want InvalidArgument", err)
	}
	if _, err := store.Update(ctx, testImage("absent", good.Target)); !errdefs.IsNotFound(err) {
		t.Errorf("Update of a missing image = %v, want NotFound", err)
	}
}

func TestImagesList(t *testing.T) {
	db, _ := openTestDB(t)
	store := NewImageStore(db)
	ctx := nsContext("ns")
	mk := func(name, mediaType, dgst string, labels, annotations map[string]string) {
		t.Helper()
		_, err := store.Create(ctx, images.Image{Name: name, Labels: labels, Target: ocispec.Descriptor{
			MediaType: mediaType, Digest: digest.FromString(dgst), Size: 10, Annotations: annotations,
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	mk("docker.io/library/alpine:3", ocispec.MediaTypeImageIndex, "alpine", map[string]string{"team": "os"}, nil)
	mk("docker.io/library/busybox:1", ocispec.MediaTypeImageManifest, "busybox", map[string]string{"team": "tools", "x.y": "z"}, nil)
	mk("example.com/app:v1", ocispec.MediaTypeImageManifest, "app", nil, map[string]string{"note": "hi"})

	for _, tt := range []struct {
		filters []string
		want    []string
	}{
		{nil, []string{"docker.io/library/alpine:3", "docker.io/library/busybox:1", "example.com/app:v1"}},
		{[]string{`name==example.com/app:v1`}, []string{"example.com/app:v1"}},
		{[]string{`name~=busybox`}, []string{"docker.io/library/busybox:1"}},
		{[]string{`target.digest==` + digest.FromString("alpine").String()}, []string{"docker.io/library/alpine:3"}},
		{[]string{`target.mediatype==` + ocispec.MediaTypeImageManifest}, []string{"docker.io/library/busybox:1", "example.com/app:v1"}},
		{[]string{`labels.team==os`, `labels."x.y"==z`}, []string{"docker.io/library/alpine:3", "docker.io/library/busybox:1"}},
		{[]string{`labels.team`}, []string{"docker.io/library/alpine:3", "docker.io/library/busybox:1"}},
		{[]string{`annotations.note==hi`}, []string{"example.com/app:v1"}},
		{[]string{`labels.team==os,name~=busybox`}, nil},
	} {
		list, err := store.List(ctx, tt.filters...)
		if err != nil {
			t.Fatalf("List(%q): %v", tt.filters, err)
		}
		if got := imageNames(list); !slices.Equal(got, tt.want) {
			t.Errorf("List(%q) = %q, want %q", tt.filters, got, tt.want)
		}
	}
	if _, err := store.List(ctx, "name=="); !errdefs.IsInvalidArgument(err) {
		t.Errorf("List with a bad filter = %v, want InvalidArgument", err)
	}
}

func TestImagesUpdate(t *testing.T) {
	db, _ := openTestDB(t)
	store := NewImageStore(db)
	ctx := nsContext("ns")
	t1 := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("one"), Size: 1,
		Annotations: map[string]string{"keep": "1", "drop": "1"}}
	t2 := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("two"), Size: 2}

	created, err := store.Create(ctx, images.Image{Name: "img", Target: t1, Labels: map[string]string{"a": "1", "b": "1"}})
	if err != nil {
		t.Fatal(err)
	}

	check := func(got images.Image, labels, annotations map[string]string, target digest.Digest) {
		t.Helper()
		stored, err := store.Get(ctx, "img")
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range []images.Image{got, stored} {
			labelsEqual(t, "image", im.Labels, labels)
			labelsEqual(t, "annotations", im.Target.Annotations, annotations)
			if im.Target.Digest != target {
				t.Errorf("target = %v, want %v", im.Target.Digest, target)
			}
			if !im.CreatedAt.Equal(created.CreatedAt) || !im.UpdatedAt.After(created.UpdatedAt) {
				t.Errorf("times = %v, %v; created %v", im.CreatedAt, im.UpdatedAt, created.CreatedAt)
			}
		}
	}

	// labels.<key> sets one label, or removes it when empty.
	upd := images.Image{Name: "img", Labels: map[string]string{"a": "", "c": "3", "b": "ignored"}}
	got, err := store.Update(ctx, upd, "labels.a", "labels.c")
	if err != nil {
		t.Fatal(err)
	}
	check(got, map[string]string{"b": "1", "c": "3"}, t1.Annotations, t1.Digest)

	// annotations.<key> works on the target's annotations.
	upd = images.Image{Name: "img", Target: ocispec.Descriptor{Annotations: map[string]string{"drop": "", "new": "n"}}}
	got, err = store.Update(ctx, upd, "annotations.drop", "annotations.new")
	if err != nil {
		t.Fatal(err)
	}
	check(got, map[string]string{"b": "1", "c": "3"}, map[string]string{"keep": "1", "new": "n"}, t1.Digest)

	// target replaces the whole descriptor, annotations included.
	got, err = store.Update(ctx, images.Image{Name: "img", Target: t2}, "target")
	if err != nil {
		t.Fatal(err)
	}
	check(got, map[string]string{"b": "1", "c": "3"}, nil, t2.Digest)

	// labels replaces them all; annotations too.
	upd = images.Image{Name: "img", Labels: map[string]string{"z": "z"}, Target: ocispec.Descriptor{Annotations: map[string]string{"q": "q"}}}
	got, err = store.Update(ctx, upd, "labels", "annotations")
	if err != nil {
		t.Fatal(err)
	}
	check(got, map[string]string{"z": "z"}, map[string]string{"q": "q"}, t2.Digest)

	// No field paths: labels and target both replaced.
	got, err = store.Update(ctx, images.Image{Name: "img", Target: t1})
	if err != nil {
		t.Fatal(err)
	}
	check(got, nil, t1.Annotations, t1.Digest)
}

func TestImagesDeleteTarget(t *testing.T) {
	db, _ := openTestDB(t)
	store := NewImageStore(db)
	ctx := nsContext("ns")
	target := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("t"), Size: 1}
	if _, err := store.Create(ctx, images.Image{Name: "img", Target: target}); err != nil {
		t.Fatal(err)
	}
	other := ocispec.Descriptor{Digest: digest.FromString("other")}
	if err := store.Delete(ctx, "img", images.DeleteTarget(&other)); !errdefs.IsNotFound(err) {
		t.Fatalf("Delete with another target = %v, want NotFound", err)
	}
	if _, err := store.Get(ctx, "img"); err != nil {
		t.Fatalf("image gone after refused delete: %v", err)
	}
	if err := store.Delete(ctx, "img", images.DeleteTarget(&target)); err != nil {
		t.Fatalf("Delete with its target: %v", err)
	}
}
