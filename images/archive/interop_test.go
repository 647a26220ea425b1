package archive

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/containerd/platforms"
)

// The archives in testdata were written by containerd 2.4.2's `ctr images
// export` (of an image it had imported from our Export): a two-platform
// index, exported for linux/amd64 and with --all-platforms. We must read
// them, and write the same bytes for the same image.
func TestContainerdArchives(t *testing.T) {
	ctx := context.Background()
	all, err := os.ReadFile("testdata/ctr-2.4.2-export-all.tar")
	if err != nil {
		t.Fatal(err)
	}
	amd64, err := os.ReadFile("testdata/ctr-2.4.2-export-amd64.tar")
	if err != nil {
		t.Fatal(err)
	}

	s := newStore(t)
	got, err := ImportIndex(ctx, s, bytes.NewReader(all))
	if err != nil {
		t.Fatal(err)
	}
	idx := readIndex(t, s, got)
	if len(idx.Manifests) != 1 {
		t.Fatalf("index = %+v", idx)
	}
	img := idx.Manifests[0]
	if name := ImageName(img.Annotations, nil); name != "docker.io/library/interop:1" {
		t.Errorf("name = %q", name)
	}
	if n := len(graph(t, s, img)); n != 7 {
		t.Errorf("%d blobs of the image imported, want 7 (index, 2 manifests, 2 configs, 2 layers)", n)
	}
	noIngests(t, s)

	// The platform-selected export imports too, and lacks the other
	// platform's blobs without complaint.
	s2 := newStore(t)
	if _, err := ImportIndex(ctx, s2, bytes.NewReader(amd64)); err != nil {
		t.Fatal(err)
	}
	if n := len(graph(t, s2, img)); n != 4 {
		t.Errorf("%d blobs of the amd64 export imported, want 4", n)
	}

	amd := platforms.Only(platforms.MustParse("linux/amd64"))
	for _, tc := range []struct {
		name string
		want []byte
		opts []ExportOpt
	}{
		{"amd64", amd64, []ExportOpt{WithImages(nil), WithManifest(img), WithPlatform(amd)}},
		{"all platforms", all, []ExportOpt{WithManifest(img), WithPlatform(amd), WithAllPlatforms()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := Export(ctx, s, &out, tc.opts...); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), tc.want) {
				t.Errorf("export differs from containerd's:\nours   %q\ntheirs %q", tarNames(t, out.Bytes()), tarNames(t, tc.want))
				for _, f := range []string{"index.json", "manifest.json", "oci-layout"} {
					if a, b := tarFileData(t, out.Bytes(), f), tarFileData(t, tc.want, f); !bytes.Equal(a, b) {
						t.Errorf("%s:\nours   %s\ntheirs %s", f, a, b)
					}
				}
			}
		})
	}
}
