package apply

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/archive/compression"
	"github.com/llitfkitfk/containerd/diff"
	dt "github.com/llitfkitfk/containerd/diff/internal/difftest"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/mount"
)

var layer1 = []dt.Entry{dt.Dir("etc/"), dt.File("etc/passwd", "root"), dt.File("etc/gone", "x"), dt.Dir("opt/"), dt.File("opt/old", "o")}
var layer2 = []dt.Entry{dt.File("etc/passwd", "root\nuser"), dt.Whiteout("etc", "gone"), dt.Dir("opt/"), dt.File("opt/.wh..wh..opq", ""), dt.File("opt/new", "n")}

const merged = `etc drwxr-xr-x
etc/passwd -rw-r--r-- root
user
opt drwxr-xr-x
opt/new -rw-r--r-- n`

func TestApplyCompressions(t *testing.T) {
	ctx := context.Background()
	store := dt.Store(t)
	a := NewFileSystemApplier(store)
	raw := dt.Tar(t, layer1...)
	for _, tc := range []struct {
		mediaType string
		blob      []byte
	}{
		{ocispec.MediaTypeImageLayer, raw},
		{ocispec.MediaTypeImageLayerGzip, dt.Compress(t, raw, compression.Gzip)},
		{ocispec.MediaTypeImageLayerZstd, dt.Compress(t, raw, compression.Zstd)},
		{compression.MediaTypeDockerLayerGzip, dt.Compress(t, raw, compression.Gzip)},
		{compression.MediaTypeDockerLayer, raw},
	} {
		t.Run(tc.mediaType, func(t *testing.T) {
			desc := dt.Put(t, store, tc.blob, tc.mediaType)
			dir := t.TempDir()
			var progress []int64
			got, err := a.Apply(ctx, desc, dt.Bind(dir), diff.WithProgress(func(d ocispec.Descriptor, n int64) {
				progress = append(progress, n)
			}))
			if err != nil {
				t.Fatal(err)
			}
			want := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
			if got.Digest != want.Digest || got.Size != want.Size || got.MediaType != want.MediaType {
				t.Errorf("Apply = %+v, want %+v", got, want)
			}
			if len(progress) < 2 || progress[0] != 0 || progress[len(progress)-1] != int64(len(tc.blob)) {
				t.Errorf("progress %v, want 0 ... %d", progress, len(tc.blob))
			}
			if b, err := os.ReadFile(filepath.Join(dir, "etc/passwd")); err != nil || string(b) != "root" {
				t.Errorf("etc/passwd = %q, %v", b, err)
			}
		})
	}
}

func TestApplyUnknownMediaType(t *testing.T) {
	store := dt.Store(t)
	a := NewFileSystemApplier(store)
	raw := dt.Tar(t, layer1...)
	for _, mt := range []string{"application/vnd.oci.image.layer.v1.tar+bzip2", ocispec.MediaTypeImageLayerGzip + "+encrypted", "application/octet-stream"} {
		desc := dt.Put(t, store, raw, mt)
		_, err := a.Apply(context.Background(), desc, dt.Bind(t.TempDir()))
		if !errdefs.IsNotImplemented(err) {
			t.Errorf("%s: err = %v, want NotImplemented", mt, err)
		}
	}
}

func TestApplyCorrupt(t *testing.T) {
	store := dt.Store(t)
	gz := dt.Compress(t, dt.Tar(t, layer1...), compression.Gzip)
	gz[len(gz)/2] ^= 0xff
	desc := dt.Put(t, store, gz, ocispec.MediaTypeImageLayerGzip)
	if _, err := NewFileSystemApplier(store).Apply(context.Background(), desc, dt.Bind(t.TempDir())); err == nil {
		t.Error("corrupt gzip layer applied")
	}
	// A gzip layer labelled as a plain tar is not a tar.
	desc = dt.Put(t, store, dt.Compress(t, dt.Tar(t, layer2...), compression.Gzip), ocispec.MediaTypeImageLayer)
	if _, err := NewFileSystemApplier(store).Apply(context.Background(), desc, dt.Bind(t.TempDir())); err == nil {
		t.Error("gzip data applied as a tar")
	}
}

func TestApplyMissingBlob(t *testing.T) {
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString("absent"), Size: 6}
	_, err := NewFileSystemApplier(dt.Store(t)).Apply(context.Background(), desc, dt.Bind(t.TempDir()))
	if !errdefs.IsNotFound(err) {
		t.Errorf("err = %v, want NotFound", err)
	}
}

// Without mounts there is nothing to apply onto. The layer used to be
// unpacked into the bare temporary mount directory, in the system temp
// directory, and left there with an Unknown error, once per call.
func TestApplyWithoutMounts(t *testing.T) {
	tmpdir := t.TempDir()
	store := dt.Store(t)
	desc := dt.Put(t, store, dt.Tar(t, layer1...), ocispec.MediaTypeImageLayer)
	t.Setenv("TMPDIR", tmpdir)
	for _, mounts := range [][]mount.Mount{nil, {}} {
		_, err := NewFileSystemApplier(store).Apply(context.Background(), desc, mounts)
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("Apply with mounts %#v: %v, want InvalidArgument", mounts, err)
		}
	}
	if entries, _ := os.ReadDir(tmpdir); len(entries) != 0 {
		t.Errorf("Apply without mounts left %v in the temp directory", entries)
	}
}

func TestApplyDiffID(t *testing.T) {
	store := dt.Store(t)
	raw := dt.Tar(t, layer1...)
	desc := dt.Put(t, store, dt.Compress(t, raw, compression.Gzip), ocispec.MediaTypeImageLayerGzip)
	a := NewFileSystemApplier(store)
	if _, err := a.Apply(context.Background(), desc, dt.Bind(t.TempDir()), diff.WithDiffID(digest.FromBytes(raw))); err != nil {
		t.Errorf("right diff ID: %v", err)
	}
	_, err := a.Apply(context.Background(), desc, dt.Bind(t.TempDir()), diff.WithDiffID(digest.FromString("other")))
	if !errdefs.IsFailedPrecondition(err) {
		t.Errorf("wrong diff ID: err = %v, want FailedPrecondition", err)
	}
}

// TestApplyOverlay applies the second layer onto an active overlay
// snapshot's mounts, as an unpack does: straight into the upper directory.
func TestApplyOverlay(t *testing.T) {
	ctx := context.Background()
	store := dt.Store(t)
	a := NewFileSystemApplier(store)
	dirs := dt.Mkdirs(t, "lower", "upper", "work", "merged")
	lower, upper, work, mergedDir := dirs[0], dirs[1], dirs[2], dirs[3]

	d1 := dt.Put(t, store, dt.Compress(t, dt.Tar(t, layer1...), compression.Gzip), ocispec.MediaTypeImageLayerGzip)
	if _, err := a.Apply(ctx, d1, dt.Bind(lower), diff.WithSyncFs(true)); err != nil {
		t.Fatal(err)
	}
	d2 := dt.Put(t, store, dt.Compress(t, dt.Tar(t, layer2...), compression.Zstd), ocispec.MediaTypeImageLayerZstd)
	ov := []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"workdir=" + work, "upperdir=" + upper, "lowerdir=" + lower}}}
	if _, err := a.Apply(ctx, d2, ov, diff.WithSyncFs(true)); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(upper, "etc/gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		t.Errorf("upper/etc/gone is not a whiteout: %v", err)
	}
	if err := mount.All(ov, mergedDir); err != nil {
		t.Skipf("mount overlay: %v", err)
	}
	defer mount.UnmountAll(mergedDir, 0)
	if got := dt.Tree(t, mergedDir); got != merged {
		t.Errorf("merged view:\n%s\nwant:\n%s", got, merged)
	}
}

// TestApplyThroughMount applies onto an overlay that has no upper
// directory to write to directly; it is mounted and written through. The
// read-only result must fail.
func TestApplyReadonlyOverlay(t *testing.T) {
	store := dt.Store(t)
	dirs := dt.Mkdirs(t, "l1", "l2")
	desc := dt.Put(t, store, dt.Tar(t, layer1...), ocispec.MediaTypeImageLayer)
	ov := []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + dirs[0] + ":" + dirs[1]}}}
	if _, err := NewFileSystemApplier(store).Apply(context.Background(), desc, ov); err == nil {
		t.Error("applied onto a read-only overlay")
	}
}

func TestApplyConcurrent(t *testing.T) {
	store := dt.Store(t)
	a := NewFileSystemApplier(store)
	gz := dt.Put(t, store, dt.Compress(t, dt.Tar(t, layer1...), compression.Gzip), ocispec.MediaTypeImageLayerGzip)
	zs := dt.Put(t, store, dt.Compress(t, dt.Tar(t, layer1...), compression.Zstd), ocispec.MediaTypeImageLayerZstd)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		desc := gz
		if i%2 == 1 {
			desc = zs
		}
		dir := t.TempDir()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.Apply(context.Background(), desc, dt.Bind(dir)); err != nil {
				errs <- fmt.Errorf("%s: %w", desc.MediaType, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
