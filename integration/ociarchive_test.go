//go:build integration

package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/llitfkitfk/containerd/internal/testimage"
)

// ociImage is an image-layout archive made by buildOCIArchive and what is
// in it.
type ociImage struct {
	path     string // the archive
	name     string // the image name it carries
	manifest ocispec.Descriptor
	config   ocispec.Descriptor
	layer    ocispec.Descriptor
	// size is what `ctr images ls` reports: manifest, config and layer.
	size int64
}

// buildOCIArchive writes an OCI image-layout tar to dir: one image for
// linux on this machine's architecture (so platform matching picks it),
// whose single gzip layer holds files. The index names the image with
// both the ref name annotation (the tag) and containerd's own image name
// annotation, which ctr uses verbatim whatever --base-name says.
func buildOCIArchive(t *testing.T, dir, name string, files map[string]string) ociImage {
	t.Helper()
	// The layer: a tar with the files in a stable order.
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	mtime := time.Unix(1700000000, 0)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: mtime, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(files[n]))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}

	tag := name[strings.LastIndex(name, ":")+1:]
	path := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(name)+".tar")
	manifest, config, layer := writeOneLayerImage(t, path, layerTar.Bytes(), ocispec.ImageConfig{Cmd: []string{"/bin/true"}},
		map[string]string{ocispec.AnnotationRefName: tag, "io.containerd.image.name": name})
	return ociImage{path: path, name: name, manifest: manifest, config: config, layer: layer,
		size: manifest.Size + config.Size + layer.Size}
}

// writeOneLayerImage writes to path an image-layout tar of one image for
// linux on this machine's architecture: layerTar gzipped as its only
// layer, cfg its config, and annotations on its entry in the index (see
// testimage.WriteOneLayer). It returns the image's descriptors.
func writeOneLayerImage(t *testing.T, path string, layerTar []byte, cfg ocispec.ImageConfig,
	annotations map[string]string) (manifest, config, layer ocispec.Descriptor) {
	t.Helper()
	manifest, config, layer, err := testimage.WriteOneLayer(path, layerTar, cfg, annotations)
	if err != nil {
		t.Fatal(err)
	}
	return manifest, config, layer
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readArchiveIndex returns the index.json of an image-layout tar.
func readArchiveIndex(t *testing.T, path string) ocispec.Index {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s has no index.json", path)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "index.json" {
			var idx ocispec.Index
			if err := json.NewDecoder(tr).Decode(&idx); err != nil {
				t.Fatal(err)
			}
			return idx
		}
	}
}

// ctrIn runs ctr against the daemon with stdin.
func (d *daemon) ctrIn(stdin io.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctrBinary, append([]string{"-a", d.Address, "--timeout", "20s"}, args...)...)
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// grpcConn dials the daemon for tests that call the API directly, with
// ctr's defaults: the namespace travels in every call's metadata.
func (d *daemon) grpcConn() *grpc.ClientConn {
	d.t.Helper()
	conn, err := grpc.NewClient("unix://"+d.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { conn.Close() })
	return conn
}

// apiCtx is a context for direct API calls in namespace ns, under lease
// if it is not empty.
func apiCtx(t *testing.T, ns, lease string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	kv := []string{"containerd-namespace", ns}
	if lease != "" {
		kv = append(kv, "containerd-lease", lease)
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// writeImageLayout writes an OCI image layout archive at path, as `ctr
// images import` reads it: the layout marker, an index of the one manifest
// (annotated as the caller chose) and the blobs.
func writeImageLayout(t *testing.T, path string, manifest ocispec.Descriptor, blobs map[digest.Digest][]byte) {
	t.Helper()
	if err := testimage.WriteLayout(path, manifest, blobs); err != nil {
		t.Fatal(err)
	}
}
