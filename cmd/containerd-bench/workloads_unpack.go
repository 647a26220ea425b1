package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// The unpack workloads import an image of several gzip layers, about 160 MB
// and 10,500 files unpacked, and unpack it into a snapshotter: the work of
// `ctr images import` behind a pull. Each round runs on a new filesystem:
// on one that has just freed the previous round's 10,000 files, creating
// files stalls for milliseconds at a time, and which daemon pays for it
// depends on the order of the rounds.
var unpackWorkloads = onFreshFS(snapshotterWorkloads("unpack",
	"ctr images import of a 4-layer, ~160 MB, 10,500-file image, unpacked", measureUnpack))

const unpackImageName = "bench.example.com/unpack:latest"

func measureUnpack(ctx context.Context, b *bench, d *daemon, snapshotter string) ([]metric, error) {
	archive, err := b.unpackArchive()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if _, err := d.ctr(ctx, "images", "import", "--snapshotter", snapshotter, archive); err != nil {
		return nil, err
	}
	return []metric{duration("import+unpack", time.Since(start))}, nil
}

var (
	unpackOnce sync.Once
	unpackPath string
	unpackErr  error
)

// unpackArchive builds the image archive once per bench run.
func (b *bench) unpackArchive() (string, error) {
	unpackOnce.Do(func() {
		unpackPath = filepath.Join(b.tmp, "unpack-image.tar")
		unpackErr = writeUnpackArchive(unpackPath)
	})
	return unpackPath, unpackErr
}

// textGen makes reproducible text-like bytes that gzip compresses about as
// well as binaries and libraries do.
type textGen struct{ state uint64 }

func (g *textGen) fill(p []byte) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 \n_.-/ABCDEFGHIJKLMNOPQRSTUVWXYZ{}()=;,"
	for i := range p {
		g.state = g.state*6364136223846793005 + 1442695040888963407
		p[i] = alphabet[(g.state>>33)%uint64(len(alphabet))]
	}
}

type layerFile struct {
	name string
	size int
	dir  bool
}

// unpackLayers describes the image: many small files as in a distribution's
// base layer, a few large ones as in a language runtime, deletions between
// layers.
func unpackLayers() [][]layerFile {
	var base, libs, app, patch []layerFile
	for d := 0; d < 100; d++ {
		base = append(base, layerFile{name: fmt.Sprintf("usr/share/d%03d/", d), dir: true})
		for f := 0; f < 80; f++ {
			base = append(base, layerFile{name: fmt.Sprintf("usr/share/d%03d/f%03d.txt", d, f), size: 1024 + (d*80+f)%6000})
		}
	}
	libs = append(libs, layerFile{name: "usr/lib/", dir: true})
	for i := 0; i < 6; i++ {
		libs = append(libs, layerFile{name: fmt.Sprintf("usr/lib/big%d.so", i), size: 20 << 20})
	}
	app = append(app, layerFile{name: "app/", dir: true})
	for i := 0; i < 2500; i++ {
		app = append(app, layerFile{name: fmt.Sprintf("app/m%04d.py", i), size: 512 + i%3000})
	}
	for d := 0; d < 10; d++ {
		patch = append(patch, layerFile{name: fmt.Sprintf("usr/share/d%03d/.wh.f000.txt", d)})
	}
	patch = append(patch, layerFile{name: "usr/lib/big0.so", size: 1 << 20})
	return [][]layerFile{base, libs, app, patch}
}

func writeUnpackArchive(path string) error {
	gen := &textGen{state: 42}
	type blob struct {
		digest string
		data   []byte
	}
	var (
		blobs   []blob
		layers  []map[string]any
		diffIDs []string
	)
	add := func(data []byte) string {
		d := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
		blobs = append(blobs, blob{d, data})
		return d
	}
	for _, files := range unpackLayers() {
		var raw bytes.Buffer
		tw := tar.NewWriter(&raw)
		for _, f := range files {
			hdr := &tar.Header{Name: f.name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(f.size), ModTime: time.Unix(1700000000, 0)}
			if f.dir {
				hdr.Mode, hdr.Typeflag, hdr.Size = 0o755, tar.TypeDir, 0
			}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if f.size > 0 {
				buf := make([]byte, f.size)
				gen.fill(buf)
				tw.Write(buf)
			}
		}
		if err := tw.Close(); err != nil {
			return err
		}
		diffIDs = append(diffIDs, fmt.Sprintf("sha256:%x", sha256.Sum256(raw.Bytes())))
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
		zw.Write(raw.Bytes())
		zw.Close()
		layers = append(layers, map[string]any{
			"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
			"digest":    add(gz.Bytes()),
			"size":      gz.Len(),
		})
	}
	config, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       map[string]any{"Cmd": []string{"/bin/sh"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	cfgDigest := add(config)
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfgDigest, "size": len(config)},
		"layers":        layers,
	})
	mfDigest := add(manifest)
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"manifests": []map[string]any{{
			"mediaType":   "application/vnd.oci.image.manifest.v1+json",
			"digest":      mfDigest,
			"size":        len(manifest),
			"annotations": map[string]string{"io.containerd.image.name": unpackImageName},
		}},
	})

	m := make(map[string][]byte, len(blobs))
	for _, bl := range blobs {
		m[bl.digest] = bl.data
	}
	return writeOCIArchive(path, index, m)
}

// writeOCIArchive writes an OCI image layout as a tar, as `ctr images
// import` reads it: the layout marker, the index and the blobs by digest.
func writeOCIArchive(path string, index []byte, blobs map[string][]byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	put := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := io.Copy(tw, bytes.NewReader(data))
		return err
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := put("index.json", index); err != nil {
		return err
	}
	for dgst, data := range blobs {
		if err := put("blobs/sha256/"+strings.TrimPrefix(dgst, "sha256:"), data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
