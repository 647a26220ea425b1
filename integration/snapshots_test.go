//go:build integration

package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// tarEntry is one member of a layer: a directory (name ends in "/"), or a
// file with data. Whiteouts are files named as the OCI spec says.
type tarEntry struct{ name, data string }

// layeredImage is an image-layout archive made by buildLayeredArchive.
type layeredImage struct {
	path     string
	name     string
	manifest ocispec.Descriptor
	// chainIDs are the names its layers unpack to, bottom first.
	chainIDs []string
}

// buildLayeredArchive writes an OCI image-layout tar to dir holding one
// image for this machine's platform with a layer per element of layers.
// Layers alternate gzip and plain tar, so that unpacking meets both.
func buildLayeredArchive(t *testing.T, dir, name string, layers [][]tarEntry) layeredImage {
	t.Helper()
	blobs := map[digest.Digest][]byte{}
	add := func(mediaType string, b []byte) ocispec.Descriptor {
		d := digest.FromBytes(b)
		blobs[d] = b
		return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
	}
	mtime := time.Unix(1700000000, 0)

	var (
		descs    []ocispec.Descriptor
		diffIDs  []digest.Digest
		chainIDs []string
	)
	for i, entries := range layers {
		var raw bytes.Buffer
		tw := tar.NewWriter(&raw)
		for _, e := range entries {
			h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), ModTime: mtime, Typeflag: tar.TypeReg}
			if strings.HasSuffix(e.name, "/") {
				h.Mode, h.Size, h.Typeflag = 0o755, 0, tar.TypeDir
			}
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			tw.Write([]byte(e.data))
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		diffID := digest.FromBytes(raw.Bytes())
		diffIDs = append(diffIDs, diffID)
		if i == 0 {
			chainIDs = append(chainIDs, diffID.String())
		} else {
			chainIDs = append(chainIDs, digest.FromString(chainIDs[i-1]+" "+diffID.String()).String())
		}
		if i%2 == 1 {
			descs = append(descs, add(ocispec.MediaTypeImageLayer, raw.Bytes()))
			continue
		}
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(raw.Bytes())
		zw.Close()
		descs = append(descs, add(ocispec.MediaTypeImageLayerGzip, gz.Bytes()))
	}

	config := add(ocispec.MediaTypeImageConfig, mustJSON(t, ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config:   ocispec.ImageConfig{Cmd: []string{"/bin/true"}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	}))
	manifest := add(ocispec.MediaTypeImageManifest, mustJSON(t, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config,
		Layers:    descs,
	}))
	indexed := manifest
	indexed.Annotations = map[string]string{
		ocispec.AnnotationRefName:  name[strings.LastIndex(name, ":")+1:],
		"io.containerd.image.name": name,
	}
	path := filepath.Join(dir, "layered.tar")
	writeImageLayout(t, path, indexed, blobs)
	return layeredImage{path: path, name: name, manifest: manifest, chainIDs: chainIDs}
}

// threeLayers adds a, dir/b and dir/c; then deletes dir/b with a whiteout
// and adds d; then makes dir opaque, hiding dir/c, and adds dir/e.
var threeLayers = [][]tarEntry{
	{{"a", "a1"}, {"dir/", ""}, {"dir/b", "b1"}, {"dir/c", "c1"}},
	{{"dir/", ""}, {"dir/.wh.b", ""}, {"d", "d2"}},
	{{"dir/", ""}, {"dir/.wh..wh..opq", ""}, {"dir/e", "e3"}},
}

// threeLayersFiles is what the three layers unpack to.
var threeLayersFiles = map[string]string{"a": "a1", "d": "d2", "dir/e": "e3"}

// snapshotLines returns the `snapshots ls` rows as key → "parent kind".
func snapshotLines(ls string) map[string]string {
	rows := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(ls), "\n")[1:] {
		switch f := strings.Fields(line); len(f) {
		case 2:
			rows[f[0]] = " " + f[1]
		case 3:
			rows[f[0]] = f[1] + " " + f[2]
		}
	}
	return rows
}

// mountSnapshot runs the mount commands `snapshots mounts` prints for key
// onto target and returns a function that unmounts it.
func mountSnapshot(t *testing.T, d *daemon, sn, target, key string) func() {
	t.Helper()
	out := d.ctr("snapshots", "--snapshotter", sn, "mounts", target, key)
	cmds := strings.Split(strings.TrimSpace(out), "\n")
	for _, c := range cmds {
		if !strings.HasPrefix(c, "mount -t ") || !strings.Contains(c, " "+target+" ") {
			t.Fatalf("snapshots mounts printed %q", out)
		}
		if b, err := exec.Command("sh", "-c", c).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", c, err, b)
		}
	}
	unmounted := false
	unmount := func() {
		if !unmounted {
			unmounted = true
			if err := unix.Unmount(target, 0); err != nil {
				t.Errorf("unmount %s: %v", target, err)
			}
		}
	}
	t.Cleanup(unmount)
	return unmount
}

// checkTree compares the regular files under root with want.
func checkTree(t *testing.T, root string, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		got[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if mustJSONString(t, got) != mustJSONString(t, want) {
		t.Errorf("files under %s = %v, want %v", root, got, want)
	}
}

func mustJSONString(t *testing.T, v any) string { return string(mustJSON(t, v)) }

// Importing with unpacking makes the image's layers into a chain of
// committed snapshots, each layer's deletions applied; the snapshot
// commands then work on them and on snapshots made from them.
func TestCtrImportUnpackSnapshots(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("unpacking and mounting snapshots needs root")
	}
	for _, sn := range []string{"naive", "overlayfs"} {
		t.Run(sn, func(t *testing.T) {
			d := newDaemon(t, "")
			d.start()
			const name = "docker.io/library/layered:v1"
			img := buildLayeredArchive(t, t.TempDir(), name, threeLayers)
			snap := func(args ...string) string {
				t.Helper()
				return d.ctr(append([]string{"snapshots", "--snapshotter", sn}, args...)...)
			}
			snapErr := func(args ...string) (string, error) {
				return d.ctrErr(append([]string{"snapshots", "--snapshotter", sn}, args...)...)
			}

			// overlayfs is ctr's default: import it without naming it.
			importArgs := []string{"images", "import"}
			if sn != "overlayfs" {
				importArgs = append(importArgs, "--snapshotter", sn)
			}
			d.ctr(append(importArgs, img.path)...)
			// The import's lease went at its end, which calls for a
			// collection; have it done before making snapshots that
			// nothing keeps, such as views.
			settle(d)
			check := d.ctr("images", "check", "--snapshotter", sn)
			line := imageLine(check, name)
			if f := strings.Fields(line); len(f) == 0 || f[len(f)-1] != "true" || !strings.Contains(line, "complete") {
				t.Fatalf("images check does not show %s complete and unpacked:\n%s", name, check)
			}

			top := img.chainIDs[2]
			rows := snapshotLines(snap("ls"))
			want := map[string]string{
				img.chainIDs[0]: " Committed",
				img.chainIDs[1]: img.chainIDs[0] + " Committed",
				img.chainIDs[2]: img.chainIDs[1] + " Committed",
			}
			if mustJSONString(t, rows) != mustJSONString(t, want) {
				t.Fatalf("snapshots ls = %v, want %v", rows, want)
			}
			tree := snap("tree")
			wantTree := " " + img.chainIDs[0] + "\n  \\_ " + img.chainIDs[1] + "\n    \\_ " + img.chainIDs[2] + "\n"
			if tree != wantTree {
				t.Errorf("snapshots tree:\n%s\nwant\n%s", tree, wantTree)
			}
			var info struct {
				Kind, Name, Parent string
				Labels             map[string]string
			}
			if err := json.Unmarshal([]byte(snap("info", top)), &info); err != nil {
				t.Fatal(err)
			}
			if info.Kind != "Committed" || info.Name != top || info.Parent != img.chainIDs[1] {
				t.Errorf("snapshots info %s = %+v", top, info)
			}
			usage := snap("usage")
			for _, id := range img.chainIDs {
				if !strings.Contains(usage, id) {
					t.Errorf("snapshots usage lacks %s:\n%s", id, usage)
				}
			}
			if u := snap("usage", "-b", top); !strings.Contains(u, top) {
				t.Errorf("snapshots usage %s:\n%s", top, u)
			}

			// A writable snapshot on the image: every layer, with its
			// deletions, shows through; a file written there is kept by
			// committing it.
			snap("prepare", "work", top)
			target := filepath.Join(t.TempDir(), "mnt")
			if err := os.Mkdir(target, 0o755); err != nil {
				t.Fatal(err)
			}
			unmount := mountSnapshot(t, d, sn, target, "work")
			checkTree(t, target, threeLayersFiles)
			if err := os.WriteFile(filepath.Join(target, "new"), []byte("written"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(target, "a")); err != nil {
				t.Fatal(err)
			}
			unmount()
			snap("commit", "saved", "work")
			if _, err := snapErr("info", "work"); err == nil {
				t.Error("the committed key is still there")
			}
			snap("view", "look", "saved")
			unmount = mountSnapshot(t, d, sn, target, "look")
			checkTree(t, target, map[string]string{"d": "d2", "dir/e": "e3", "new": "written"})
			unmount()

			if out := snap("label", "saved", "purpose=test"); !strings.Contains(out, "purpose=test") {
				t.Errorf("snapshots label printed %q", out)
			}
			if out := snap("info", "saved"); !strings.Contains(out, `"purpose": "test"`) || !strings.Contains(out, `"Parent": "`+top+`"`) {
				t.Errorf("snapshots info saved:\n%s", out)
			}

			// Parents go only after their children.
			for _, key := range []string{top, "saved"} {
				out, err := snapErr("rm", key)
				if err == nil || !strings.Contains(out, "failed precondition") {
					t.Errorf("removing %s, which has children: %v\n%s", key, err, out)
				}
			}
			if out := d.ctr("-n", "other", "snapshots", "--snapshotter", sn, "ls"); len(snapshotLines(out)) != 0 {
				t.Errorf("another namespace lists snapshots:\n%s", out)
			}
			snap("rm", "look", "saved")
			rows = snapshotLines(snap("ls"))
			if _, ok := rows["saved"]; ok || len(rows) != 3 {
				t.Errorf("snapshots after rm: %v", rows)
			}

			// The image's config keeps its layers through a collection.
			settle(d)
			if rows := snapshotLines(snap("ls")); len(rows) != 3 {
				t.Errorf("image snapshots after collection: %v", rows)
			}
			d.ctr("images", "rm", "--sync", name)
			if rows := snapshotLines(snap("ls")); len(rows) != 0 {
				t.Errorf("snapshots after the image went: %v", rows)
			}
		})
	}
}

// The same image unpacks into two namespaces and two snapshotters; each
// sees only its own snapshots.
func TestCtrUnpackNamespaces(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("unpacking snapshots needs root")
	}
	d := newDaemon(t, "")
	d.start()
	const name = "docker.io/library/layered:v1"
	img := buildLayeredArchive(t, t.TempDir(), name, threeLayers)
	d.ctr("-n", "one", "images", "import", "--snapshotter", "naive", img.path)
	d.ctr("-n", "two", "images", "import", "--snapshotter", "overlayfs", img.path)
	for _, c := range []struct{ ns, sn string }{{"one", "naive"}, {"two", "overlayfs"}} {
		if rows := snapshotLines(d.ctr("-n", c.ns, "snapshots", "--snapshotter", c.sn, "ls")); len(rows) != 3 {
			t.Errorf("%s lists on %s: %v", c.ns, c.sn, rows)
		}
	}
	for _, c := range []struct{ ns, sn string }{{"one", "overlayfs"}, {"two", "naive"}, {"default", "naive"}} {
		if rows := snapshotLines(d.ctr("-n", c.ns, "snapshots", "--snapshotter", c.sn, "ls")); len(rows) != 0 {
			t.Errorf("%s lists on %s: %v", c.ns, c.sn, rows)
		}
	}
	out, err := d.ctrErr("snapshots", "--snapshotter", "nosuch", "ls")
	if err == nil || !strings.Contains(out, "invalid argument") {
		t.Errorf("listing an unknown snapshotter: %v\n%s", err, out)
	}
}

func TestCtrEventsSnapshot(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	i := 0
	d.awaitEvent(func(line string) bool {
		// ctr 1.6 does not know the events' snapshotter field, so it
		// does not print it.
		return strings.Contains(line, "/snapshot/prepare") && strings.Contains(line, `"key":"ev-`)
	}, func() {
		i++
		d.ctr("snapshots", "--snapshotter", "naive", "prepare", fmt.Sprint("ev-", i))
	})
	d.awaitEvent(func(line string) bool {
		return strings.Contains(line, "/snapshot/commit") && strings.Contains(line, `"name":"c-`)
	}, func() {
		i++
		d.ctr("snapshots", "--snapshotter", "naive", "prepare", fmt.Sprint("k-", i))
		d.ctr("snapshots", "--snapshotter", "naive", "commit", fmt.Sprint("c-", i), fmt.Sprint("k-", i))
	})
	d.awaitEvent(func(line string) bool {
		return strings.Contains(line, "/snapshot/remove") && strings.Contains(line, `"key":"gone-`)
	}, func() {
		i++
		d.ctr("snapshots", "--snapshotter", "naive", "prepare", fmt.Sprint("gone-", i))
		d.ctr("snapshots", "--snapshotter", "naive", "rm", fmt.Sprint("gone-", i))
	})
}

// `snapshots diff` writes the layer of a snapshot's changes: from its
// parent by default, or from a snapshot given.
func TestCtrSnapshotsDiff(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounting snapshots needs root")
	}
	d := newDaemon(t, "")
	d.start()
	snap := func(args ...string) string {
		t.Helper()
		return d.ctr(append([]string{"snapshots", "--snapshotter", "naive"}, args...)...)
	}
	target := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(key, name string) {
		unmount := mountSnapshot(t, d, "naive", target, key)
		if err := os.WriteFile(filepath.Join(target, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		unmount()
	}
	snap("prepare", "first", "")
	write("first", "a")
	snap("commit", "base", "first")
	snap("prepare", "top", "base")
	write("top", "b")

	files := func(layer []byte) []string {
		t.Helper()
		zr, err := gzip.NewReader(bytes.NewReader(layer))
		if err != nil {
			t.Fatalf("diff is not gzip: %v", err)
		}
		var names []string
		for tr := tar.NewReader(zr); ; {
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
	if got := files(d.ctrStdout("snapshots", "--snapshotter", "naive", "diff", "top")); fmt.Sprint(got) != "[b]" {
		t.Errorf("diff of top from its parent has %v", got)
	}
	if got := files(d.ctrStdout("snapshots", "--snapshotter", "naive", "diff", "base")); fmt.Sprint(got) != "[a]" {
		t.Errorf("diff of a first snapshot has %v", got)
	}
	if out, err := d.ctrErr("snapshots", "--snapshotter", "naive", "diff", "nosuch"); err == nil || !strings.Contains(out, "not found") {
		t.Errorf("diff of a snapshot that is not there: %v\n%s", err, out)
	}
}

// settle runs a collection and waits for it, so that none called for
// earlier runs later.
func settle(d *daemon) {
	d.t.Helper()
	d.ctr("leases", "create", "--id", "settle")
	d.ctr("leases", "rm", "--sync", "settle")
}
