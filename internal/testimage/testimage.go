// Package testimage writes the small OCI image-layout archives the
// integration tests import into the daemon: images of one layer for this
// machine's platform, among them one that runs the host's static busybox.
// Both the ctr-driven tests (integration) and the Go client's
// (integration/client) build their images with it.
package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	_ "crypto/sha256" // go-digest hashes with what is linked in
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ModTime is the modification time of every entry the package writes, so
// that the same input gives the same archive.
var ModTime = time.Unix(1700000000, 0)

// WriteLayout writes an OCI image-layout tar at path, as `ctr images
// import` and the Go client's Import read it: the layout marker, an index
// holding the one manifest descriptor (annotated as the caller chose) and
// the blobs.
func WriteLayout(path string, manifest ocispec.Descriptor, blobs map[digest.Digest][]byte) error {
	index, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{manifest},
	})
	if err != nil {
		return err
	}
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}
	var archive bytes.Buffer
	aw := tar.NewWriter(&archive)
	put := func(name string, b []byte) error {
		if err := aw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: ModTime, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := aw.Write(b)
		return err
	}
	if err := put(ocispec.ImageLayoutFile, layout); err != nil {
		return err
	}
	if err := put("index.json", index); err != nil {
		return err
	}
	for d, b := range blobs {
		if err := put("blobs/sha256/"+d.Encoded(), b); err != nil {
			return err
		}
	}
	if err := aw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, archive.Bytes(), 0o644)
}

// WriteOneLayer writes to path an image-layout tar of one image for linux
// on this machine's architecture (so that platform matching picks it):
// layerTar gzipped as its only layer, cfg its config, and annotations on
// its entry in the index. It returns the image's descriptors.
func WriteOneLayer(path string, layerTar []byte, cfg ocispec.ImageConfig,
	annotations map[string]string) (manifest, config, layer ocispec.Descriptor, err error) {
	blobs := map[digest.Digest][]byte{}
	add := func(mediaType string, v any) (ocispec.Descriptor, error) {
		b, ok := v.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(v); err != nil {
				return ocispec.Descriptor{}, err
			}
		}
		d := digest.FromBytes(b)
		blobs[d] = b
		return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}, nil
	}
	var layerGz bytes.Buffer
	gz := gzip.NewWriter(&layerGz)
	if _, err = gz.Write(layerTar); err == nil {
		err = gz.Close()
	}
	if err != nil {
		return
	}
	if layer, err = add(ocispec.MediaTypeImageLayerGzip, layerGz.Bytes()); err != nil {
		return
	}
	if config, err = add(ocispec.MediaTypeImageConfig, ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config:   cfg,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(layerTar)}},
	}); err != nil {
		return
	}
	if manifest, err = add(ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config,
		Layers:    []ocispec.Descriptor{layer},
	}); err != nil {
		return
	}
	indexed := manifest
	indexed.Annotations = annotations
	err = WriteLayout(path, indexed, blobs)
	return
}

// BusyboxBinary is the host's static busybox, which the busybox image
// runs. Debian's busybox-static installs it; `make test` does.
const BusyboxBinary = "/bin/busybox"

// BusyboxApplets are linked to /bin/busybox in the busybox image.
var BusyboxApplets = []string{
	"sh", "echo", "sleep", "cat", "true", "false", "ps", "id", "ls", "env", "hostname", "wc",
}

// BusyboxConfig is the busybox image's config: sh, with the usual PATH.
var BusyboxConfig = ocispec.ImageConfig{
	Cmd:        []string{"sh"},
	Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	WorkingDir: "/",
}

// WriteBusybox writes to path an image-layout tar of the image name: one
// layer with the host's static busybox as /bin/busybox, its applets as
// symlinks, /etc/passwd with root and the directories a container's
// mounts go on; BusyboxConfig. The index names the image with
// containerd's image name annotation.
func WriteBusybox(path, name string) error {
	bin, err := os.ReadFile(BusyboxBinary)
	if err != nil {
		return fmt.Errorf("static busybox is needed for the test image (`make test` installs busybox-static): %w", err)
	}
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	put := func(h *tar.Header, body []byte) {
		h.ModTime = ModTime
		h.Size = int64(len(body))
		if err == nil {
			err = tw.WriteHeader(h)
		}
		if err == nil && len(body) > 0 {
			_, err = tw.Write(body)
		}
	}
	for _, d := range []string{"bin/", "dev/", "etc/", "proc/", "root/", "sys/", "tmp/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		put(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: mode}, nil)
	}
	put(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, bin)
	for _, applet := range BusyboxApplets {
		put(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, nil)
	}
	put(&tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		return fmt.Errorf("busybox layer: %w", err)
	}
	_, _, _, err = WriteOneLayer(path, layerTar.Bytes(), BusyboxConfig, map[string]string{"io.containerd.image.name": name})
	return err
}
