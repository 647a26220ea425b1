//go:build integration

package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// busyboxApplets are linked to /bin/busybox in the test image.
var busyboxApplets = []string{
	"sh", "echo", "sleep", "cat", "true", "false", "ps", "id", "ls", "env", "hostname", "wc",
}

// buildBusyboxArchive writes an OCI image-layout tar to dir holding the
// image name: one layer with the host's static busybox as /bin/busybox,
// its applets as symlinks, and the directories a container's mounts go
// on; a config that runs sh with the usual PATH. It is for this machine's
// platform, so that ctr picks it.
func buildBusyboxArchive(t *testing.T, dir, name string) string {
	t.Helper()
	bin, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("static busybox is needed for the test image (`make test` installs busybox-static): %v", err)
	}
	mtime := time.Unix(1700000000, 0)

	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	header := func(h *tar.Header) {
		h.ModTime = mtime
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin/", "dev/", "etc/", "proc/", "root/", "sys/", "tmp/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		header(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: mode})
	}
	header(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))})
	if _, err := tw.Write(bin); err != nil {
		t.Fatal(err)
	}
	for _, applet := range busyboxApplets {
		header(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
	}
	passwd := []byte("root:x:0:0:root:/root:/bin/sh\n")
	header(&tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(passwd))})
	tw.Write(passwd)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}

	blobs := map[digest.Digest][]byte{}
	add := func(mediaType string, b []byte) ocispec.Descriptor {
		d := digest.FromBytes(b)
		blobs[d] = b
		return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
	}
	var layerGz bytes.Buffer
	gz := gzip.NewWriter(&layerGz)
	gz.Write(layerTar.Bytes())
	gz.Close()
	layer := add(ocispec.MediaTypeImageLayerGzip, layerGz.Bytes())
	config := add(ocispec.MediaTypeImageConfig, mustJSON(t, ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config: ocispec.ImageConfig{
			Cmd:        []string{"sh"},
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			WorkingDir: "/",
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(layerTar.Bytes())}},
	}))
	manifest := add(ocispec.MediaTypeImageManifest, mustJSON(t, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config,
		Layers:    []ocispec.Descriptor{layer},
	}))
	manifest.Annotations = map[string]string{"io.containerd.image.name": name}
	path := filepath.Join(dir, "busybox.tar")
	writeImageLayout(t, path, manifest, blobs)
	return path
}
