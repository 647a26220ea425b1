package walking

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/archive/compression"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/diff/apply"
	dt "github.com/llitfkitfk/containerd/diff/internal/difftest"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/mount"
)

var base = []dt.Entry{dt.Dir("etc/"), dt.File("etc/passwd", "root"), dt.File("etc/gone", "x"), dt.Dir("opt/"), dt.File("opt/old", "o"), dt.Symlink("bin", "usr/bin")}

// setup makes lower from base and upper from base with changes, and
// returns them.
func setup(t *testing.T, store content.Store) (lower, upper string) {
	t.Helper()
	dirs := dt.Mkdirs(t, "lower", "upper")
	desc := dt.Put(t, store, dt.Tar(t, base...), ocispec.MediaTypeImageLayer)
	for _, d := range dirs {
		if _, err := apply.NewFileSystemApplier(store).Apply(context.Background(), desc, dt.Bind(d)); err != nil {
			t.Fatal(err)
		}
	}
	upper = dirs[1]
	must(t, os.WriteFile(filepath.Join(upper, "etc/passwd"), []byte("root\nuser"), 0o644))
	must(t, os.Remove(filepath.Join(upper, "etc/gone")))
	must(t, os.RemoveAll(filepath.Join(upper, "opt")))
	must(t, os.MkdirAll(filepath.Join(upper, "opt/new"), 0o700))
	must(t, os.Remove(filepath.Join(upper, "bin")))
	must(t, os.Symlink("/usr/local/bin", filepath.Join(upper, "bin")))
	return dirs[0], upper
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// check applies the layer desc onto a fresh copy of base and compares the
// result with upper.
func check(t *testing.T, store content.Store, desc ocispec.Descriptor, upper string) ocispec.Descriptor {
	t.Helper()
	dir := t.TempDir()
	a := apply.NewFileSystemApplier(store)
	baseDesc := dt.Put(t, store, dt.Tar(t, base...), ocispec.MediaTypeImageLayer)
	if _, err := a.Apply(context.Background(), baseDesc, dt.Bind(dir)); err != nil {
		t.Fatal(err)
	}
	applied, err := a.Apply(context.Background(), desc, dt.Bind(dir))
	if err != nil {
		t.Fatalf("apply diff: %v", err)
	}
	if got, want := dt.Tree(t, dir), dt.Tree(t, upper); got != want {
		t.Errorf("base + diff:\n%s\nwant:\n%s", got, want)
	}
	return applied
}

func TestCompare(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		mediaType string
		comp      compression.Compression
	}{
		{"", compression.Gzip}, // the default
		{ocispec.MediaTypeImageLayerGzip, compression.Gzip},
		{ocispec.MediaTypeImageLayerZstd, compression.Zstd},
		{ocispec.MediaTypeImageLayer, compression.Uncompressed},
	} {
		t.Run(tc.comp.String()+"/"+tc.mediaType, func(t *testing.T) {
			store := dt.Store(t)
			lower, upper := setup(t, store)
			var opts []diff.Opt
			if tc.mediaType != "" {
				opts = append(opts, diff.WithMediaType(tc.mediaType))
			}
			opts = append(opts, diff.WithReference("my-ref"), diff.WithLabels(map[string]string{"mine": "yes"}))
			desc, err := NewWalkingDiff(store).Compare(ctx, dt.Bind(lower), dt.Bind(upper), opts...)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.mediaType
			if want == "" {
				want = ocispec.MediaTypeImageLayerGzip
			}
			if desc.MediaType != want {
				t.Errorf("media type %q, want %q", desc.MediaType, want)
			}
			info, err := store.Info(ctx, desc.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if info.Labels["mine"] != "yes" {
				t.Errorf("labels %v lack the caller's", info.Labels)
			}
			// Applying the blob gives the diff ID the label names.
			applied := check(t, store, desc, upper)
			label := info.Labels[diff.LabelUncompressed]
			if tc.comp == compression.Uncompressed {
				if applied.Digest != desc.Digest {
					t.Errorf("uncompressed layer's diff ID %s != digest %s", applied.Digest, desc.Digest)
				}
			} else if label != applied.Digest.String() {
				t.Errorf("uncompressed label %q, want %s", label, applied.Digest)
			}
			// The blob is what its descriptor says it is.
			b, err := content.ReadBlob(ctx, store, desc)
			if err != nil {
				t.Fatal(err)
			}
			if digest.FromBytes(b) != desc.Digest || int64(len(b)) != desc.Size {
				t.Error("descriptor does not match the blob")
			}
			if got := compression.DetectCompression(b); got != tc.comp {
				t.Errorf("blob is %v, want %v", got, tc.comp)
			}
		})
	}
}

func TestCompareNoLower(t *testing.T) {
	store := dt.Store(t)
	_, upper := setup(t, store)
	desc, err := NewWalkingDiff(store).Compare(context.Background(), nil, dt.Bind(upper))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := apply.NewFileSystemApplier(store).Apply(context.Background(), desc, dt.Bind(dir)); err != nil {
		t.Fatal(err)
	}
	if got, want := dt.Tree(t, dir), dt.Tree(t, upper); got != want {
		t.Errorf("layer from nothing:\n%s\nwant:\n%s", got, want)
	}
}

func TestCompareUnknownMediaType(t *testing.T) {
	store := dt.Store(t)
	lower, upper := setup(t, store)
	_, err := NewWalkingDiff(store).Compare(context.Background(), dt.Bind(lower), dt.Bind(upper), diff.WithMediaType("application/x-bzip2"))
	if !errdefs.IsNotImplemented(err) {
		t.Errorf("err = %v, want NotImplemented", err)
	}
	// Nothing is left behind in the store.
	sts, err := store.ListStatuses(context.Background())
	if err != nil || len(sts) != 0 {
		t.Errorf("ingests left: %v, %v", sts, err)
	}
}

// TestCompareOverlayInUse diffs an active overlay snapshot while its
// upper directory is mounted, as a running container's is.
func TestCompareOverlayInUse(t *testing.T) {
	ctx := context.Background()
	store := dt.Store(t)
	dirs := dt.Mkdirs(t, "lower", "upper", "work", "rootfs")
	lower, upper, work, rootfs := dirs[0], dirs[1], dirs[2], dirs[3]
	desc := dt.Put(t, store, dt.Tar(t, base...), ocispec.MediaTypeImageLayer)
	if _, err := apply.NewFileSystemApplier(store).Apply(ctx, desc, dt.Bind(lower)); err != nil {
		t.Fatal(err)
	}
	active := []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"workdir=" + work, "upperdir=" + upper, "lowerdir=" + lower}}}
	if err := mount.All(active, rootfs); err != nil {
		t.Skipf("mount overlay: %v", err)
	}
	defer mount.UnmountAll(rootfs, 0)
	must(t, os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("changed"), 0o644))
	must(t, os.Remove(filepath.Join(rootfs, "etc/gone")))

	layer, err := NewWalkingDiff(store).Compare(ctx, dt.Bind(lower), active)
	if err != nil {
		t.Fatal(err)
	}
	check(t, store, layer, rootfs)
}

func TestReadonly(t *testing.T) {
	got := readonly([]mount.Mount{
		{Type: "overlay", Options: []string{"index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l1:/l2"}},
		{Type: "bind", Source: "/s", Options: []string{"rbind", "rw"}},
	})
	want := [][]string{{"index=off", "lowerdir=/u:/l1:/l2", "ro"}, {"rbind", "rw", "ro"}}
	for i := range want {
		if len(got[i].Options) != len(want[i]) {
			t.Fatalf("mount %d options %q, want %q", i, got[i].Options, want[i])
		}
		for j := range want[i] {
			if got[i].Options[j] != want[i][j] {
				t.Errorf("mount %d options %q, want %q", i, got[i].Options, want[i])
			}
		}
	}
}
