package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/containerd/platforms"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func newStore(t testing.TB) content.Store {
	t.Helper()
	s, err := local.NewStore(filepath.Join(t.TempDir(), "content"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func put(t testing.TB, s content.Store, mt string, p []byte) ocispec.Descriptor {
	t.Helper()
	desc := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(p), Size: int64(len(p))}
	if err := content.WriteBlob(context.Background(), s, "t-"+desc.Digest.String(), bytes.NewReader(p), desc); err != nil {
		t.Fatal(err)
	}
	return desc
}

func putJSON(t testing.TB, s content.Store, mt string, v any) ocispec.Descriptor {
	t.Helper()
	p, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return put(t, s, mt, p)
}

func randBytes(n int, seed string) []byte {
	p := make([]byte, n)
	rand.NewChaCha8(sha256.Sum256([]byte(seed))).Read(p)
	return p
}

// image writes a two-layer image for platform p and returns its manifest
// with p as its platform.
func image(t testing.TB, s content.Store, p string, layerSize int) ocispec.Descriptor {
	t.Helper()
	pl := platforms.MustParse(p)
	var layers []ocispec.Descriptor
	for i := range 2 {
		layers = append(layers, put(t, s, ocispec.MediaTypeImageLayerGzip, randBytes(layerSize, fmt.Sprint(p, i))))
	}
	config := putJSON(t, s, ocispec.MediaTypeImageConfig, ocispec.Image{Platform: pl})
	m := putJSON(t, s, ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config,
		Layers:    layers,
	})
	m.Platform = &pl
	return m
}

func indexOf(t testing.TB, s content.Store, ms ...ocispec.Descriptor) ocispec.Descriptor {
	t.Helper()
	return putJSON(t, s, ocispec.MediaTypeImageIndex, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: ms,
	})
}

// graph returns every blob under desc that the store has.
func graph(t testing.TB, s content.Store, desc ocispec.Descriptor) map[digest.Digest]bool {
	t.Helper()
	seen := map[digest.Digest]bool{}
	err := images.Walk(context.Background(), images.HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if _, err := s.Info(ctx, d.Digest); errdefs.IsNotFound(err) {
			return nil, images.ErrSkipDesc
		}
		seen[d.Digest] = true
		return images.Children(ctx, s, d)
	}), desc)
	if err != nil {
		t.Fatal(err)
	}
	return seen
}

func blobs(t testing.TB, s content.Store) map[digest.Digest]bool {
	t.Helper()
	all := map[digest.Digest]bool{}
	if err := s.Walk(context.Background(), func(i content.Info) error { all[i.Digest] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	return all
}

// tarFile is an entry of a test archive.
type tarFile struct {
	name string
	data []byte
	typ  byte
	link string
	size int64 // if set, the size the header claims
}

func mkTar(t testing.TB, files ...tarFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: f.typ, Linkname: f.link}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Typeflag != tar.TypeReg {
			hdr.Size = 0
		}
		if f.size != 0 {
			hdr.Size = f.size
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil && f.size == 0 {
			t.Fatal(err)
		}
	}
	tw.Flush()
	if files == nil || files[len(files)-1].size == 0 {
		tw.Close()
	}
	return buf.Bytes()
}

func tarNames(t testing.TB, p []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(p))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

func tarFileData(t testing.TB, p []byte, name string) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(p))
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in archive: %v", name, err)
		}
		if h.Name == name {
			b, _ := io.ReadAll(tr)
			return b
		}
	}
}

func readIndex(t testing.TB, s content.Store, d ocispec.Descriptor) ocispec.Index {
	t.Helper()
	p, err := content.ReadBlob(context.Background(), s, d)
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(p, &idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

func blobName(d digest.Digest) string { return "blobs/sha256/" + d.Encoded() }

func TestExportImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	amd := image(t, src, "linux/amd64", 300<<10)
	arm := image(t, src, "linux/arm64", 300<<10)
	idx := indexOf(t, src, amd, arm)
	single := image(t, src, "linux/arm/v7", 1000)

	var out bytes.Buffer
	err := Export(ctx, src, &out,
		WithManifest(idx, "docker.io/library/multi:1.0"),
		WithManifest(single, "example.com/team/single:v7"),
		WithAllPlatforms(),
		WithPlatform(platforms.Only(platforms.MustParse("linux/arm64"))))
	if err != nil {
		t.Fatal(err)
	}

	names := tarNames(t, out.Bytes())
	if !sort.StringsAreSorted(names) {
		t.Errorf("entries not in name order: %v", names)
	}
	for _, want := range []string{"oci-layout", "index.json", "manifest.json", "blobs/", "blobs/sha256/", blobName(idx.Digest), blobName(amd.Digest), blobName(arm.Digest)} {
		if !contains(names, want) {
			t.Errorf("archive lacks %s", want)
		}
	}

	// Docker's manifest.json: the arm64 manifest for the index, familiar
	// names, paths into blobs/.
	var dm []dockerEntry
	if err := json.Unmarshal(tarFileData(t, out.Bytes(), "manifest.json"), &dm); err != nil {
		t.Fatal(err)
	}
	armM := readManifest(t, src, arm)
	if len(dm) != 2 || dm[0].Config != blobName(armM.Config.Digest) || len(dm[0].Layers) != 2 || dm[0].Layers[1] != blobName(armM.Layers[1].Digest) ||
		strings.Join(dm[0].RepoTags, ",") != "multi:1.0" || strings.Join(dm[1].RepoTags, ",") != "example.com/team/single:v7" {
		t.Errorf("manifest.json = %+v", dm)
	}

	// Deterministic.
	var again bytes.Buffer
	if err := Export(ctx, src, &again, WithManifest(idx, "docker.io/library/multi:1.0"), WithManifest(single, "example.com/team/single:v7"),
		WithAllPlatforms(), WithPlatform(platforms.Only(platforms.MustParse("linux/arm64")))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), again.Bytes()) {
		t.Error("two exports of the same images differ")
	}

	dst := newStore(t)
	got, err := ImportIndex(ctx, dst, bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got.MediaType != ocispec.MediaTypeImageIndex {
		t.Errorf("index media type %q", got.MediaType)
	}
	gi := readIndex(t, dst, got)
	if len(gi.Manifests) != 2 {
		t.Fatalf("index lists %d images", len(gi.Manifests))
	}
	for i, want := range []struct {
		d         digest.Digest
		name, ref string
	}{
		{idx.Digest, "docker.io/library/multi:1.0", "1.0"},
		{single.Digest, "example.com/team/single:v7", "v7"},
	} {
		m := gi.Manifests[i]
		if m.Digest != want.d || m.Annotations[AnnotationImageName] != want.name || m.Annotations[AnnotationRefName] != want.ref {
			t.Errorf("image %d = %s %v, want %s %s %s", i, m.Digest, m.Annotations, want.d, want.name, want.ref)
		}
		srcGraph := graph(t, src, m)
		dstGraph := graph(t, dst, m)
		if len(srcGraph) != len(dstGraph) {
			t.Errorf("image %d: %d blobs imported of %d", i, len(dstGraph), len(srcGraph))
		}
	}
	// The blobs came over intact.
	for d := range graph(t, src, idx) {
		a, _ := content.ReadBlob(ctx, src, ocispec.Descriptor{Digest: d})
		b, err := content.ReadBlob(ctx, dst, ocispec.Descriptor{Digest: d})
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("blob %s: %v", d, err)
		}
	}
	noIngests(t, dst)
}

func readManifest(t testing.TB, s content.Store, d ocispec.Descriptor) ocispec.Manifest {
	t.Helper()
	p, err := content.ReadBlob(context.Background(), s, d)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(p, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func noIngests(t testing.TB, s content.Store) {
	t.Helper()
	st, err := s.ListStatuses(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st) > 0 {
		t.Errorf("ingests left behind: %v", st)
	}
}

func TestExportPlatform(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	amd := image(t, src, "linux/amd64", 100)
	arm := image(t, src, "linux/arm64", 100)
	idx := indexOf(t, src, amd, arm)
	armM, amdM := readManifest(t, src, arm), readManifest(t, src, amd)

	var out bytes.Buffer
	if err := Export(ctx, src, &out, WithManifest(idx, "docker.io/library/x:1"), WithPlatform(platforms.Only(platforms.MustParse("linux/arm64")))); err != nil {
		t.Fatal(err)
	}
	names := tarNames(t, out.Bytes())
	if !contains(names, blobName(armM.Layers[0].Digest)) || contains(names, blobName(amdM.Layers[0].Digest)) || contains(names, blobName(amd.Digest)) {
		t.Errorf("arm64 export has %v", names)
	}
	// The index goes whole: it is what the image names.
	if !contains(names, blobName(idx.Digest)) {
		t.Error("index left out")
	}

	// Default: the host's platform, strictly.
	out.Reset()
	host := platforms.DefaultSpec()
	err := Export(ctx, src, &out, WithManifest(idx, "docker.io/library/x:1"))
	if host.OS == "linux" && (host.Architecture == "amd64" || host.Architecture == "arm64") {
		if err != nil {
			t.Fatal(err)
		}
		names = tarNames(t, out.Bytes())
		mine, other := amdM, armM
		if host.Architecture == "arm64" {
			mine, other = armM, amdM
		}
		if !contains(names, blobName(mine.Layers[0].Digest)) || contains(names, blobName(other.Layers[0].Digest)) {
			t.Errorf("default export has %v", names)
		}
	}

	// A platform the index lacks.
	err = Export(ctx, src, io.Discard, WithManifest(idx), WithPlatform(images.OnlyPlatforms(platforms.MustParse("windows/amd64"))))
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "windows/amd64") {
		t.Errorf("err = %v, want NotFound naming windows/amd64", err)
	}

	// A missing layer fails before anything is written...
	partial := newStore(t)
	m := image(t, partial, "linux/arm64", 100)
	lm := readManifest(t, partial, m)
	if err := partial.Delete(ctx, lm.Layers[1].Digest); err != nil {
		t.Fatal(err)
	}
	var w countWriter
	if err := Export(ctx, partial, &w, WithManifest(m, "a:b")); !errdefs.IsNotFound(err) || w.n != 0 {
		t.Errorf("missing layer: err = %v, %d bytes written", err, w.n)
	}
	// ...or, with WithSkipMissing, exports the manifest alone.
	out.Reset()
	if err := Export(ctx, partial, &out, WithManifest(m, "a:b"), WithSkipMissing()); err != nil {
		t.Fatal(err)
	}
	names = tarNames(t, out.Bytes())
	if !contains(names, blobName(m.Digest)) || contains(names, blobName(lm.Layers[0].Digest)) {
		t.Errorf("skip-missing export has %v", names)
	}

	// Only manifests and indexes.
	if err := Export(ctx, src, io.Discard, WithManifest(armM.Config)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("exporting a config: err = %v", err)
	}
}

type countWriter struct{ n int }

func (c *countWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

// ociArchive returns the files of an OCI layout holding one image.
func ociArchive(t testing.TB) (files map[string][]byte, idx ocispec.Index, all []digest.Digest) {
	t.Helper()
	s := newStore(t)
	m := image(t, s, "linux/amd64", 5000)
	m.Platform = nil
	m.Annotations = nameAnnotations("docker.io/library/app:2", nil)
	files = map[string][]byte{}
	for d := range graph(t, s, m) {
		p, _ := content.ReadBlob(context.Background(), s, ocispec.Descriptor{Digest: d})
		files[blobName(d)] = p
		all = append(all, d)
	}
	idx = ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{m}}
	p, _ := json.Marshal(idx)
	files["index.json"] = p
	files["oci-layout"] = []byte(`{"imageLayoutVersion":"1.0.0"}`)
	return files, idx, all
}

func TestImportOrders(t *testing.T) {
	ctx := context.Background()
	files, idx, all := ociArchive(t)
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)

	for _, order := range []string{"blobs first", "index first"} {
		t.Run(order, func(t *testing.T) {
			ns := append([]string(nil), names...)
			if order == "index first" {
				sort.Slice(ns, func(i, j int) bool { return !strings.HasPrefix(ns[i], "blobs/") && strings.HasPrefix(ns[j], "blobs/") })
			}
			var tf []tarFile
			for _, n := range ns {
				tf = append(tf, tarFile{name: n, data: files[n]})
			}
			s := newStore(t)
			got, err := ImportIndex(ctx, s, bytes.NewReader(mkTar(t, tf...)))
			if err != nil {
				t.Fatal(err)
			}
			gi := readIndex(t, s, got)
			if len(gi.Manifests) != 1 || gi.Manifests[0].Digest != idx.Manifests[0].Digest ||
				gi.Manifests[0].Annotations[AnnotationImageName] != "docker.io/library/app:2" {
				t.Errorf("index = %+v", gi)
			}
			for _, d := range all {
				if _, err := s.Info(ctx, d); err != nil {
					t.Errorf("blob %s: %v", d, err)
				}
			}
			noIngests(t, s)
		})
	}

	t.Run("more blobs than open ingests", func(t *testing.T) {
		// Past maxOpenWriters ingests are closed and resumed at commit.
		var tf []tarFile
		var extra []digest.Digest
		for i := range maxOpenWriters + 20 {
			p := randBytes(100+i, fmt.Sprint("extra", i))
			tf = append(tf, tarFile{name: blobName(digest.FromBytes(p)), data: p})
			extra = append(extra, digest.FromBytes(p))
		}
		for _, n := range names {
			tf = append(tf, tarFile{name: n, data: files[n]})
		}
		s := newStore(t)
		if _, err := ImportIndex(ctx, s, bytes.NewReader(mkTar(t, tf...))); err != nil {
			t.Fatal(err)
		}
		have := blobs(t, s)
		for _, d := range append(extra, all...) {
			if !have[d] {
				t.Errorf("blob %s not committed", d)
			}
		}
		noIngests(t, s)

		// And aborted, on failure.
		s = newStore(t)
		tf = append(tf[:len(tf):len(tf)], tarFile{name: "stray", data: []byte("x")})
		if _, err := ImportIndex(ctx, s, bytes.NewReader(mkTar(t, tf...))); err == nil {
			t.Fatal("imported a stray file")
		}
		if len(blobs(t, s)) != 0 {
			t.Error("blobs committed")
		}
		noIngests(t, s)
	})

	t.Run("some blobs already in the store", func(t *testing.T) {
		s := newStore(t)
		put(t, s, "", files[blobName(all[0])])
		var tf []tarFile
		for _, n := range names {
			tf = append(tf, tarFile{name: n, data: files[n]})
		}
		if _, err := ImportIndex(ctx, s, bytes.NewReader(mkTar(t, tf...))); err != nil {
			t.Fatal(err)
		}
		if len(blobs(t, s)) != len(all)+1 {
			t.Errorf("%d blobs, want %d", len(blobs(t, s)), len(all)+1)
		}
	})
}

// layerTar returns a small tar, a layer's content.
func layerTar(t testing.TB, name string) []byte {
	return mkTar(t, tarFile{name: name, data: []byte("file " + name)})
}

func gz(p []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(p)
	w.Close()
	return b.Bytes()
}

func TestImportDockerSave(t *testing.T) {
	ctx := context.Background()
	l1 := layerTar(t, "a")
	l2 := gz(layerTar(t, "b"))
	cfg1, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(l1), digest.FromBytes(layerTar(t, "b"))}}})
	cfg2, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}})
	c1, c2 := digest.FromBytes(cfg1).Encoded(), digest.FromBytes(cfg2).Encoded()
	mf, _ := json.Marshal([]dockerEntry{
		{Config: c1 + ".json", RepoTags: []string{"busybox:latest", "example.com:5000/me/bb:1"}, Layers: []string{"l1/layer.tar", "l2/layer.tar"}},
		// Shares the first layer through a link; named only in repositories.
		{Config: c2 + ".json", Layers: []string{"l3/layer.tar"}},
	})
	archive := mkTar(t,
		tarFile{name: "l1/", typ: tar.TypeDir},
		tarFile{name: "l1/VERSION", data: []byte("1.0")},
		tarFile{name: "l1/json", data: []byte(`{"id":"l1"}`)},
		tarFile{name: "l1/layer.tar", data: l1},
		tarFile{name: "l2/layer.tar", data: l2},
		tarFile{name: "l3/layer.tar", typ: tar.TypeSymlink, link: "../l1/layer.tar"},
		tarFile{name: c1 + ".json", data: cfg1},
		tarFile{name: c2 + ".json", data: cfg2},
		tarFile{name: "manifest.json", data: mf},
		tarFile{name: "repositories", data: []byte(`{"other":{"v2":"l3"}}`)},
	)

	s := newStore(t)
	got, err := ImportIndex(ctx, s, bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	gi := readIndex(t, s, got)
	if len(gi.Manifests) != 3 {
		t.Fatalf("index lists %d images: %+v", len(gi.Manifests), gi)
	}
	for i, want := range []struct{ name, ref, platform string }{
		{"docker.io/library/busybox:latest", "latest", "linux/arm/v7"},
		{"example.com:5000/me/bb:1", "1", "linux/arm/v7"},
		{"docker.io/library/other:v2", "v2", "linux/amd64"},
	} {
		d := gi.Manifests[i]
		if d.MediaType != images.MediaTypeDockerSchema2Manifest || d.Annotations[AnnotationImageName] != want.name || d.Annotations[AnnotationRefName] != want.ref ||
			d.Platform == nil || platforms.Format(*d.Platform) != want.platform {
			t.Errorf("image %d = %+v, want %v", i, d, want)
		}
	}
	m := readManifest(t, s, gi.Manifests[0])
	if m.MediaType != images.MediaTypeDockerSchema2Manifest || m.Config.MediaType != images.MediaTypeDockerSchema2Config || m.Config.Digest.Encoded() != c1 ||
		len(m.Layers) != 2 ||
		m.Layers[0].MediaType != images.MediaTypeDockerSchema2Layer || m.Layers[0].Digest != digest.FromBytes(l1) ||
		m.Layers[1].MediaType != images.MediaTypeDockerSchema2LayerGzip || m.Layers[1].Digest != digest.FromBytes(l2) {
		t.Errorf("manifest = %+v", m)
	}
	m2 := readManifest(t, s, gi.Manifests[2])
	if len(m2.Layers) != 1 || m2.Layers[0].Digest != digest.FromBytes(l1) {
		t.Errorf("linked layer: %+v", m2.Layers)
	}
	// The legacy json and VERSION files are no part of any image.
	if blobs(t, s)[digest.FromString("1.0")] {
		t.Error("VERSION file imported as a blob")
	}
	diffs, err := images.RootFS(ctx, s, m.Config)
	if err != nil || len(diffs) != 2 {
		t.Errorf("RootFS = %v, %v", diffs, err)
	}
	noIngests(t, s)

	t.Run("compress", func(t *testing.T) {
		s := newStore(t)
		got, err := ImportIndex(ctx, s, bytes.NewReader(archive), WithImportCompression())
		if err != nil {
			t.Fatal(err)
		}
		m := readManifest(t, s, readIndex(t, s, got).Manifests[0])
		if m.Layers[0].MediaType != images.MediaTypeDockerSchema2LayerGzip {
			t.Fatalf("layer 0 = %+v", m.Layers[0])
		}
		p, _ := content.ReadBlob(ctx, s, m.Layers[0])
		zr, err := gzip.NewReader(bytes.NewReader(p))
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(zr); !bytes.Equal(b, l1) {
			t.Error("compressed layer does not hold the layer")
		}
		noIngests(t, s)
	})
}

func TestImportHostile(t *testing.T) {
	ctx := context.Background()
	files, _, _ := ociArchive(t)
	good := []tarFile{{name: "oci-layout", data: files["oci-layout"]}}
	var blobNames []string
	for n := range files {
		if strings.HasPrefix(n, "blobs/") {
			blobNames = append(blobNames, n)
		}
	}
	sort.Strings(blobNames)
	for _, n := range blobNames {
		good = append(good, tarFile{name: n, data: files[n]})
	}
	index := tarFile{name: "index.json", data: files["index.json"]}
	evil := []byte("evil bytes")
	evilName := blobName(digest.FromBytes(evil))
	missingIdx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, Manifests: []ocispec.Descriptor{{
		MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("nope"), Size: 4}}})
	dockerMf, _ := json.Marshal([]dockerEntry{{Config: "c.json", Layers: []string{"l/layer.tar"}}})

	for _, tc := range []struct {
		name  string
		files []tarFile
		want  string
	}{
		{"dot-dot path", append(clone(good), tarFile{name: "blobs/../../etc/passwd", data: evil}, index), "leaves the archive"},
		{"absolute path", append(clone(good), tarFile{name: "/etc/passwd", data: evil}, index), "absolute"},
		{"symlink in blobs", append(clone(good), tarFile{name: evilName, typ: tar.TypeSymlink, link: "../../../etc/passwd"}, index), "symbolic link"},
		{"hard link", append(clone(good), tarFile{name: "x", typ: tar.TypeLink, link: good[1].name}, index), "hard link"},
		{"device", append(clone(good), tarFile{name: "dev", typ: tar.TypeChar}, index), "not a regular file"},
		{"oversize index.json", append(clone(good), tarFile{name: "index.json", data: bytes.Repeat([]byte(" "), maxJSON+1)}), "over the"},
		{"blob not matching its name", append(clone(good), tarFile{name: blobName(digest.FromString("other")), data: evil}, index), "not the"},
		{"index names a missing blob", append(clone(good), tarFile{name: "index.json", data: missingIdx}), "lacks"},
		{"entry outside blobs", append(clone(good), tarFile{name: "stray", data: evil}, index), "outside blobs/"},
		{"blob name not a digest", append(clone(good), tarFile{name: "blobs/sha256/xyz", data: evil}, index), "not a digest"},
		{"duplicate", append(clone(good), good[1], index), "twice"},
		{"truncated", append(clone(good), index, tarFile{name: evilName, data: evil[:3], size: int64(len(evil))}), "archive"},
		{"no index.json", clone(good), "without index.json"},
		{"bad layout version", append([]tarFile{{name: "oci-layout", data: []byte(`{"imageLayoutVersion":"9"}`)}}, append(clone(good[1:]), index)...), "layout version"},
		{"unrecognised", []tarFile{{name: "foo", data: evil}}, "unrecognised"},
		{"docker: missing layer", []tarFile{{name: "c.json", data: []byte("{}")}, {name: "manifest.json", data: dockerMf}}, `"l/layer.tar" is not in the archive`},
		{"docker: link out", []tarFile{{name: "c.json", data: []byte("{}")}, {name: "l/layer.tar", typ: tar.TypeSymlink, link: "../../x"}, {name: "manifest.json", data: dockerMf}}, "leaves the archive"},
		{"docker: absolute link", []tarFile{{name: "c.json", data: []byte("{}")}, {name: "l/layer.tar", typ: tar.TypeSymlink, link: "/etc/passwd"}, {name: "manifest.json", data: dockerMf}}, "absolute"},
		{"docker: link loop", []tarFile{{name: "c.json", data: []byte("{}")}, {name: "l/layer.tar", typ: tar.TypeSymlink, link: "layer2.tar"}, {name: "l/layer2.tar", typ: tar.TypeSymlink, link: "layer.tar"}, {name: "manifest.json", data: dockerMf}}, "symbolic links deep"},
		{"docker: config not its name", []tarFile{{name: digest.FromString("x").Encoded() + ".json", data: []byte("{}")}}, "not the"},
		{"docker: bad name", []tarFile{{name: "c.json", data: []byte("{}")}, {name: "l/layer.tar", data: evil},
			{name: "manifest.json", data: []byte(`[{"Config":"c.json","RepoTags":["Bad:1"],"Layers":["l/layer.tar"]}]`)}}, "lowercase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			_, err := ImportIndex(ctx, s, bytes.NewReader(mkTar(t, tc.files...)))
			if err == nil {
				t.Fatal("imported")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to say %q", err, tc.want)
			}
			if tc.name != "truncated" && !errdefs.IsInvalidArgument(err) && !errdefs.IsNotImplemented(err) {
				t.Errorf("err = %v, not InvalidArgument", err)
			}
			// Nothing committed: not the good blobs before the bad part,
			// not the bad one.
			if b := blobs(t, s); len(b) != 0 {
				t.Errorf("%d blobs committed: %v", len(b), b)
			}
			noIngests(t, s)
		})
	}
}

func clone(f []tarFile) []tarFile { return append([]tarFile(nil), f...) }

func TestImportReaderFails(t *testing.T) {
	// A reader failing midway: the error is the reader's, nothing stays.
	files, _, _ := ociArchive(t)
	var tf []tarFile
	for n, p := range files {
		tf = append(tf, tarFile{name: n, data: p})
	}
	sort.Slice(tf, func(i, j int) bool { return tf[i].name < tf[j].name })
	p := mkTar(t, tf...)
	boom := errors.New("boom")
	s := newStore(t)
	_, err := ImportIndex(context.Background(), s, io.MultiReader(bytes.NewReader(p[:len(p)/2]), errReader{boom}))
	if !errors.Is(err, boom) {
		t.Errorf("err = %v", err)
	}
	if len(blobs(t, s)) != 0 {
		t.Error("blobs committed")
	}
	noIngests(t, s)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// BenchmarkImport imports a 100 MB archive: its time should be close to
// that of hashing and writing 100 MB once.
func BenchmarkImport(b *testing.B) {
	files, _, _ := ociArchive(b)
	big := randBytes(100<<20, "big")
	bd := blobName(digest.FromBytes(big))
	var tf []tarFile
	for n, p := range files {
		tf = append(tf, tarFile{name: n, data: p})
	}
	tf = append(tf, tarFile{name: bd, data: big})
	p := mkTar(b, tf...)
	b.SetBytes(int64(len(p)))
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		s := newStore(b)
		b.StartTimer()
		if _, err := ImportIndex(context.Background(), s, bytes.NewReader(p)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHashAndWrite(b *testing.B) {
	big := randBytes(100<<20, "big")
	b.SetBytes(int64(len(big)))
	for range b.N {
		b.StopTimer()
		s := newStore(b)
		b.StartTimer()
		put(b, s, "", big)
	}
}
