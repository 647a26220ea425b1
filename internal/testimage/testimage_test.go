package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// readArchive returns the files of a tar archive by name.
func readArchive(t *testing.T, r io.Reader) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = b
	}
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
}

// TestWriteOneLayer reads an archive back the way an importer does: the
// index's one manifest, its config and layer, each blob under its digest.
func TestWriteOneLayer(t *testing.T) {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
	tw.Write([]byte("hi\n"))
	tw.Close()
	path := filepath.Join(t.TempDir(), "image.tar")
	cfg := ocispec.ImageConfig{Cmd: []string{"/hello"}}
	annotations := map[string]string{"io.containerd.image.name": "example.com/x:1"}
	manifest, config, layerDesc, err := WriteOneLayer(path, layer.Bytes(), cfg, annotations)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := readArchive(t, f)

	if got := string(files[ocispec.ImageLayoutFile]); got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("layout marker %s", got)
	}
	for _, d := range []ocispec.Descriptor{manifest, config, layerDesc} {
		b, ok := files["blobs/sha256/"+d.Digest.Encoded()]
		if !ok || digest.FromBytes(b) != d.Digest || int64(len(b)) != d.Size {
			t.Fatalf("blob %v missing or not what its descriptor says", d.Digest)
		}
	}
	var index ocispec.Index
	decode(t, files["index.json"], &index)
	if len(index.Manifests) != 1 || index.Manifests[0].Digest != manifest.Digest ||
		index.Manifests[0].Annotations["io.containerd.image.name"] != "example.com/x:1" {
		t.Fatalf("index %s", files["index.json"])
	}
	var m ocispec.Manifest
	decode(t, files["blobs/sha256/"+manifest.Digest.Encoded()], &m)
	if m.Config.Digest != config.Digest || len(m.Layers) != 1 || m.Layers[0].Digest != layerDesc.Digest ||
		layerDesc.MediaType != ocispec.MediaTypeImageLayerGzip {
		t.Fatalf("manifest %+v", m)
	}
	var img ocispec.Image
	decode(t, files["blobs/sha256/"+config.Digest.Encoded()], &img)
	if img.OS != "linux" || img.Architecture != runtime.GOARCH || img.Config.Cmd[0] != "/hello" ||
		len(img.RootFS.DiffIDs) != 1 || img.RootFS.DiffIDs[0] != digest.FromBytes(layer.Bytes()) {
		t.Fatalf("config %+v", img)
	}
	zr, err := gzip.NewReader(bytes.NewReader(files["blobs/sha256/"+layerDesc.Digest.Encoded()]))
	if err != nil {
		t.Fatal(err)
	}
	if got := readArchive(t, zr); string(got["hello"]) != "hi\n" {
		t.Fatalf("layer holds %v", got)
	}
}

// TestWriteBusybox checks that the busybox image's layer holds the host's
// busybox and links its applets to it.
func TestWriteBusybox(t *testing.T) {
	bin, err := os.ReadFile(BusyboxBinary)
	if err != nil {
		t.Fatalf("%s is needed (`make test` installs busybox-static): %v", BusyboxBinary, err)
	}
	path := filepath.Join(t.TempDir(), "busybox.tar")
	if err := WriteBusybox(path, "example.com/busybox:1"); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := readArchive(t, f)
	var index ocispec.Index
	decode(t, files["index.json"], &index)
	var m ocispec.Manifest
	decode(t, files["blobs/sha256/"+index.Manifests[0].Digest.Encoded()], &m)
	zr, err := gzip.NewReader(bytes.NewReader(files["blobs/sha256/"+m.Layers[0].Digest.Encoded()]))
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]string{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeSymlink:
			links[h.Name] = h.Linkname
		case tar.TypeReg:
			if h.Name == "bin/busybox" {
				b, _ := io.ReadAll(tr)
				if !bytes.Equal(b, bin) || h.Mode&0o111 == 0 {
					t.Fatalf("bin/busybox is not the host's executable busybox")
				}
				links[h.Name] = "(file)"
			}
		}
	}
	if links["bin/busybox"] != "(file)" {
		t.Fatal("no bin/busybox in the layer")
	}
	for _, a := range BusyboxApplets {
		if links["bin/"+a] != "busybox" {
			t.Errorf("bin/%s is not a link to busybox", a)
		}
	}
}
