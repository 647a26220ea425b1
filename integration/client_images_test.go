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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images/archive"
	"github.com/llitfkitfk/containerd/internal/testimage"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/snapshots"
)

// imgManifest is the manifest of a single-platform test image.
func imgManifest(t *testing.T, img testutil.Image) ocispec.Manifest {
	t.Helper()
	var m ocispec.Manifest
	if err := json.Unmarshal(img.Blobs[img.Root.Digest], &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// imgDiffIDs is the diff IDs of a single-platform test image's config.
func imgDiffIDs(t *testing.T, img testutil.Image) []digest.Digest {
	t.Helper()
	var cfg ocispec.Image
	if err := json.Unmarshal(img.Blobs[imgManifest(t, img).Config.Digest], &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.RootFS.DiffIDs
}

// imgHostOf returns the image of the index's manifest for this machine.
func imgHostOf(t *testing.T, index testutil.Image, host ocispec.Descriptor) testutil.Image {
	t.Helper()
	img := testutil.Image{Root: host, Blobs: index.Blobs, Platform: testutil.HostPlatform()}
	return img
}

// imgSnapshots is the names of sn's committed snapshots.
func imgSnapshots(t *testing.T, ctx context.Context, sn snapshots.Snapshotter) []string {
	t.Helper()
	var names []string
	if err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindCommitted {
			names = append(names, info.Name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// TestClientImages drives the client's image flows (import, unpack,
// export; pull, push, fetch) against our daemon and containerd's, 1.6
// and 2.x: they are the client's own work, on the daemon's stores.
func TestClientImages(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("unpacking mounts snapshots, which needs root")
	}
	daemons := []struct {
		name  string
		start func(t *testing.T) string // the address
		// second is a snapshotter besides overlayfs.
		second string
	}{
		{"ours", func(t *testing.T) string {
			d := newDaemon(t, "")
			d.start()
			return d.Address
		}, "naive"},
		{"containerd1.6", func(t *testing.T) string {
			needPrivateRun(t)
			return startPeer(t, distroContainerd, 2, shimUnderTest(t)).Address
		}, "native"},
		{"containerd2", func(t *testing.T) string {
			needPrivateRun(t)
			return startPeer(t, containerd2(t, "containerd"), 3, shimUnderTest(t)).Address
		}, "native"},
	}
	for _, d := range daemons {
		t.Run(d.name, func(t *testing.T) {
			address := d.start(t)
			t.Run("ImportUnpackExport", func(t *testing.T) {
				clientImageScenario(t, imgClient(t, address, "imgtest"), d.second)
			})
			t.Run("PullPush", func(t *testing.T) {
				clientPullScenario(t, imgClient(t, address, "imgpull"), d.second)
			})
		})
	}
}

// imgClient is our client on address, in namespace ns by default.
func imgClient(t *testing.T, address, ns string) *client.Client {
	t.Helper()
	c, err := client.New(address, client.WithDefaultNamespace(ns), client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func imgCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// clientImageScenario imports a multi-platform archive through c, unpacks
// it into the default snapshotter and second, checks what the image says
// of itself, exports it and imports the export into another namespace.
func clientImageScenario(t *testing.T, c *client.Client, second string) {
	ctx := imgCtx(t)
	index, hostDesc, err := testutil.MultiPlatformImage()
	if err != nil {
		t.Fatal(err)
	}
	host := imgHostOf(t, index, hostDesc)
	const name = "example.com/client/multi:v1"
	path := filepath.Join(t.TempDir(), "multi.tar")
	if err := index.WriteLayout(path, name); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	imported, err := c.Import(ctx, f, client.WithDigestRef(func(d digest.Digest) string { return "example.com/client/by@" + d.String() }))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, img := range imported {
		names = append(names, img.Name)
		if img.Target.Digest != index.Root.Digest {
			t.Errorf("%s targets %s, want the index %s", img.Name, img.Target.Digest, index.Root.Digest)
		}
	}
	if want := []string{name, "example.com/client/by@" + index.Root.Digest.String()}; !slices.Equal(names, want) {
		t.Fatalf("imported %q, want %q", names, want)
	}

	img, err := c.GetImage(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := img.IsUnpacked(ctx, ""); ok || err != nil {
		t.Fatalf("unpacked before Unpack: %v, %v", ok, err)
	}
	diffIDs := imgDiffIDs(t, host)
	if got, err := img.RootFS(ctx); err != nil || !slices.Equal(got, diffIDs) {
		t.Fatalf("rootfs %v, %v; want the host image's %v", got, err, diffIDs)
	}
	m := imgManifest(t, host)
	if cfg, err := img.Config(ctx); err != nil || cfg.Digest != m.Config.Digest {
		t.Fatalf("config %v, %v; want %s", cfg.Digest, err, m.Config.Digest)
	}
	if spec, err := img.Spec(ctx); err != nil || !slices.Equal(spec.Config.Env, testimage.BusyboxConfig.Env) ||
		platforms.Format(spec.Platform) != platforms.Format(host.Platform) {
		t.Fatalf("spec %+v, %v", spec, err)
	}
	wantSize := index.Root.Size + hostDesc.Size + m.Config.Size
	for _, l := range m.Layers {
		wantSize += l.Size
	}
	if size, err := img.Size(ctx); err != nil || size != wantSize {
		t.Fatalf("size %d, %v; want %d", size, err, wantSize)
	}

	// Unpack into the default snapshotter (overlayfs) and the second;
	// again is a no-op.
	for _, sn := range []string{"", second} {
		if err := img.Unpack(ctx, sn); err != nil {
			t.Fatalf("unpack into %q: %v", sn, err)
		}
		if ok, err := img.IsUnpacked(ctx, sn); !ok || err != nil {
			t.Fatalf("unpacked into %q: %v, %v", sn, ok, err)
		}
	}
	chain := identity.ChainIDs(slices.Clone(diffIDs))
	var want []string
	for _, d := range chain {
		want = append(want, d.String())
	}
	slices.Sort(want)
	overlay := c.SnapshotService("overlayfs")
	if got := imgSnapshots(t, ctx, overlay); !slices.Equal(got, want) {
		t.Fatalf("overlayfs snapshots %v, want the chain %v", got, want)
	}
	if err := img.Unpack(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if got := imgSnapshots(t, ctx, overlay); !slices.Equal(got, want) {
		t.Fatalf("snapshots after a second unpack %v, want %v", got, want)
	}
	// The config keeps the chain from the collector.
	info, err := c.ContentStore().Info(ctx, m.Config.Digest)
	if err != nil || info.Labels["containerd.io/gc.ref.snapshot.overlayfs"] != chain[len(chain)-1].String() ||
		info.Labels["containerd.io/gc.ref.snapshot."+second] != chain[len(chain)-1].String() {
		t.Fatalf("config labels %v, %v", info.Labels, err)
	}

	// A platform the image lacks is NotFound.
	other := client.NewImageWithPlatform(c, img.Metadata(), platforms.Only(ocispec.Platform{OS: "windows", Architecture: "s390x"}))
	if err := other.Unpack(ctx, second); !errdefs.IsNotFound(err) {
		t.Fatalf("unpack for a missing platform: %v, want NotFound", err)
	}
	if _, err := c.GetImage(ctx, "example.com/client/none:v1"); !errdefs.IsNotFound(err) {
		t.Fatalf("getting a missing image: %v, want NotFound", err)
	}
	if _, err := c.Import(ctx, strings.NewReader("not a tar")); err == nil {
		t.Fatal("imported garbage")
	}
	if l, err := c.ListImages(ctx, "name=="+name); err != nil || len(l) != 1 || l[0].Name() != name {
		t.Fatalf("list: %v, %v", l, err)
	}

	// Export the host's platform, and import it into another namespace.
	var buf bytes.Buffer
	if err := c.Export(ctx, &buf, archive.WithImage(c.ImageService(), name)); err != nil {
		t.Fatal(err)
	}
	files := imgTarFiles(t, buf.Bytes())
	var idx ocispec.Index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != index.Root.Digest || idx.Manifests[0].Annotations[archive.AnnotationImageName] != name {
		t.Fatalf("exported index %+v", idx.Manifests)
	}
	for _, d := range append([]digest.Digest{index.Root.Digest, hostDesc.Digest, m.Config.Digest}, layerDigests(m)...) {
		if !bytes.Equal(files["blobs/sha256/"+d.Encoded()], index.Blobs[d]) {
			t.Errorf("export lacks blob %s, or has it wrong", d)
		}
	}
	ctx2 := namespaces.WithNamespace(ctx, "imgtest2")
	again, err := c.Import(ctx2, bytes.NewReader(buf.Bytes()))
	if err != nil || len(again) != 1 || again[0].Name != name || again[0].Target.Digest != index.Root.Digest {
		t.Fatalf("re-import: %+v, %v", again, err)
	}
	img2 := client.NewImage(c, again[0])
	if err := img2.Unpack(ctx2, second); err != nil {
		t.Fatal(err)
	}
	if got, err := img2.RootFS(ctx2); err != nil || !slices.Equal(got, diffIDs) {
		t.Fatalf("re-imported rootfs %v, %v", got, err)
	}
}

func layerDigests(m ocispec.Manifest) []digest.Digest {
	var ds []digest.Digest
	for _, l := range m.Layers {
		ds = append(ds, l.Digest)
	}
	return ds
}

// imgTarFiles is the regular files of a tar by name.
func imgTarFiles(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			p, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = p
		}
	}
}

// clientPullScenario pulls from a registry through c, for a platform of
// an index, unpacking into second; then for this machine's into the
// default snapshotter; then pushes a manifest back and fetches it.
func clientPullScenario(t *testing.T, c *client.Client, second string) {
	ctx := imgCtx(t)
	r := testutil.StartRegistry(t, testutil.RegistryOptions{})
	index, hostDesc, err := testutil.MultiPlatformImage()
	if err != nil {
		t.Fatal(err)
	}
	host := imgHostOf(t, index, hostDesc)
	ref := pushImage(t, r, "client/multi", "v1", index)

	// Another platform than this machine's: its manifest and layer only.
	var idx ocispec.Index
	if err := json.Unmarshal(index.Blobs[index.Root.Digest], &idx); err != nil {
		t.Fatal(err)
	}
	var otherDesc ocispec.Descriptor
	for _, d := range idx.Manifests {
		if d.Digest != hostDesc.Digest {
			otherDesc = d
			break
		}
	}
	otherPlatform := platforms.Format(*otherDesc.Platform)
	img, err := c.Pull(ctx, ref, client.WithPlatform(otherPlatform), client.WithPullUnpack,
		client.WithPullSnapshotter(second), client.WithPullLabels(map[string]string{"pulled": "yes"}))
	if err != nil {
		t.Fatal(err)
	}
	if img.Name() != ref || img.Target().Digest != index.Root.Digest || img.Labels()["pulled"] != "yes" {
		t.Fatalf("pulled %s -> %s, labels %v", img.Name(), img.Target().Digest, img.Labels())
	}
	if ok, err := img.IsUnpacked(ctx, second); !ok || err != nil {
		t.Fatalf("%s unpacked: %v, %v", otherPlatform, ok, err)
	}
	other := testutil.Image{Root: otherDesc, Blobs: index.Blobs}
	if info, err := c.ContentStore().Info(ctx, imgManifest(t, other).Layers[0].Digest); err != nil {
		t.Errorf("the %s layer: %v", otherPlatform, err)
	} else if src := info.Labels["containerd.io/distribution.source."+r.Host]; src != "client/multi" {
		t.Errorf("the %s layer's source label is %q, want client/multi (labels %v)", otherPlatform, src, info.Labels)
	}
	for _, l := range imgManifest(t, host).Layers {
		if _, err := c.ContentStore().Info(ctx, l.Digest); !errdefs.IsNotFound(err) {
			t.Errorf("a host layer was fetched for %s: %v", otherPlatform, err)
		}
	}

	// This machine's platform, into the default snapshotter.
	img, err = c.Pull(ctx, ref, client.WithPullUnpack)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := img.IsUnpacked(ctx, ""); !ok || err != nil {
		t.Fatalf("host platform unpacked: %v, %v", ok, err)
	}
	if got, err := img.RootFS(ctx); err != nil || !slices.Equal(got, imgDiffIDs(t, host)) {
		t.Fatalf("rootfs %v, %v", got, err)
	}
	stored, err := c.ImageService().Get(ctx, ref)
	if err != nil || stored.Labels["pulled"] != "" {
		t.Fatalf("a pull without labels left %v (%v)", stored.Labels, err)
	}

	if _, err := c.Pull(ctx, ref, client.WithPlatform("linux/amd64"), client.WithPlatform("linux/arm64")); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("pull for two platforms: %v, want InvalidArgument", err)
	}
	if _, err := c.Pull(ctx, r.Ref("client/multi", "nosuch")); !errdefs.IsNotFound(err) {
		t.Fatalf("pull of a missing tag: %v, want NotFound", err)
	}

	// Push the host's manifest to another repository.
	if err := c.Push(ctx, r.Ref("client/copy", "v2"), hostDesc); err != nil {
		t.Fatal(err)
	}
	if d, err := r.ManifestDigest("client/copy", "v2"); err != nil || d != hostDesc.Digest {
		t.Fatalf("pushed manifest %s, %v; want %s", d, err, hostDesc.Digest)
	}
	// Fetch records it without unpacking.
	fetched, err := c.Fetch(ctx, r.Ref("client/copy", "v2"))
	if err != nil || fetched.Target.Digest != hostDesc.Digest {
		t.Fatalf("fetch: %+v, %v", fetched, err)
	}
}

// ctr images mount unpacks an image if need be and mounts its root
// filesystem; unmount --rm takes the mount, its snapshot and its lease
// away. The target is relative: ctr names the snapshot and the lease
// after it, and a lease id cannot hold a slash.
func TestCtrImagesMount(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounting needs root")
	}
	d := newDaemon(t, "")
	d.start()
	const name = "docker.io/library/mounted:v1"
	img := buildOCIArchive(t, t.TempDir(), name, map[string]string{"etc/hello": "hello\n"})
	d.ctr("images", "import", "--no-unpack", img.path)
	cwd := t.TempDir()
	target := filepath.Join(cwd, "mnt")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	ctrIn := func(args ...string) (string, error) {
		cmd := exec.Command(ctrBinary, append([]string{"-a", d.Address, "--timeout", "20s"}, args...)...)
		cmd.Dir = cwd
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// The default snapshotter: ctr 1.6 unpacks into it whatever
	// --snapshotter says.
	out, err := ctrIn("images", "mount", name, "mnt")
	if err != nil {
		t.Fatalf("images mount: %v\n%s", err, out)
	}
	t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
	if lines := strings.Fields(out); len(lines) != 2 || !strings.HasPrefix(lines[0], "sha256:") || lines[1] != "mnt" {
		t.Fatalf("images mount printed %q, want the chain ID and the target", out)
	}
	if b, err := os.ReadFile(filepath.Join(target, "etc/hello")); err != nil || string(b) != "hello\n" {
		t.Fatalf("the mounted image's etc/hello: %q, %v", b, err)
	}
	// Read-only unless --rw.
	if err := os.WriteFile(filepath.Join(target, "new"), nil, 0o644); err == nil {
		t.Error("wrote into a read-only mount")
	}
	if out := d.ctr("leases", "ls"); !strings.Contains(out, "mnt ") {
		t.Errorf("no lease named after the target:\n%s", out)
	}
	if out, err := ctrIn("images", "unmount", "--rm", "mnt"); err != nil || strings.TrimSpace(out) != "mnt" {
		t.Fatalf("images unmount: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(target, "etc/hello")); !os.IsNotExist(err) {
		t.Errorf("still mounted after unmount: %v", err)
	}
	if out := d.ctr("snapshots", "ls"); strings.Contains(out, "mnt ") {
		t.Errorf("the mount's snapshot outlived unmount --rm:\n%s", out)
	}
	if out := d.ctr("leases", "ls"); strings.Contains(out, "mnt ") {
		t.Errorf("the mount's lease outlived unmount --rm:\n%s", out)
	}
	// The image was unpacked on the way: check says so.
	if line := imageLine(d.ctr("images", "check"), name); !strings.HasSuffix(strings.TrimSpace(line), "true") {
		t.Errorf("images check after mount: %q", line)
	}
}
