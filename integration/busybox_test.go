//go:build integration

package integration

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

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

	path := filepath.Join(dir, "busybox.tar")
	writeOneLayerImage(t, path, layerTar.Bytes(), ocispec.ImageConfig{
		Cmd:        []string{"sh"},
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		WorkingDir: "/",
	}, map[string]string{"io.containerd.image.name": name})
	return path
}
