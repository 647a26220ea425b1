package images

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"testing"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/namespaces"
)

func TestCheckContent(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "test")
	cs, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img, err := testutil.NewImage(testutil.HostPlatform(), ocispec.ImageConfig{},
		testutil.TarLayer(testutil.Layer{"a": "a"}), testutil.TarLayer(testutil.Layer{"b": "b"}))
	if err != nil {
		t.Fatal(err)
	}
	for d, b := range img.Blobs {
		if err := content.WriteBlob(ctx, cs, d.String(), bytes.NewReader(b), ocispec.Descriptor{Digest: d, Size: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(img.Blobs[img.Root.Digest], &m); err != nil {
		t.Fatal(err)
	}
	check := func(want contentCheck) {
		t.Helper()
		got, err := checkContent(ctx, cs, img.Root, platforms.Default())
		if err != nil || got != want {
			t.Fatalf("check = %+v, %v; want %+v", got, err, want)
		}
	}
	size := func(ds ...ocispec.Descriptor) (n int64) {
		for _, d := range ds {
			n += d.Size
		}
		return n
	}
	all := size(append([]ocispec.Descriptor{m.Config}, m.Layers...)...)
	check(contentCheck{status: "complete (3/3)", size: humanSizes(all, all), complete: true})

	if err := cs.Delete(ctx, m.Layers[1].Digest); err != nil {
		t.Fatal(err)
	}
	check(contentCheck{status: "incomplete (2/3)", size: humanSizes(all-m.Layers[1].Size, all)})

	if err := cs.Delete(ctx, img.Root.Digest); err != nil {
		t.Fatal(err)
	}
	check(contentCheck{status: "unavailable (0/?)", size: "0.0 B/?"})
}

func humanSizes(present, required int64) string {
	return commands.HumanBytes(present) + "/" + commands.HumanBytes(required)
}

func TestImageLabelArgs(t *testing.T) {
	got := commands.LabelArgs([]string{"a=1", "b", "c=", "d=x=y"})
	want := map[string]string{"a": "1", "b": "true", "c": "", "d": "x=y"}
	if !maps.Equal(got, want) {
		t.Fatalf("labels %v, want %v", got, want)
	}
	if s := labelsColumn(map[string]string{"z": "1", "a": "2"}); s != "a=2,z=1" {
		t.Errorf("labels column %q", s)
	}
	if s := labelsColumn(nil); s != "-" {
		t.Errorf("no labels column %q", s)
	}
}
