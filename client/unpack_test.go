package client

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/platforms"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/diff/apply"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/snapshots/naive"
	"github.com/llitfkitfk/containerd/unpack"
)

// countingApplier counts the layers applied.
type countingApplier struct {
	diff.Applier
	mu      sync.Mutex
	applied []string
}

func (a *countingApplier) Apply(ctx context.Context, desc ocispec.Descriptor, mounts []mount.Mount, opts ...diff.ApplyOpt) (ocispec.Descriptor, error) {
	a.mu.Lock()
	a.applied = append(a.applied, desc.Digest.String())
	a.mu.Unlock()
	return a.Applier.Apply(ctx, desc, mounts, opts...)
}

func (a *countingApplier) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.applied)
}

func TestUnpackTarget(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("applying layers mounts snapshots, which needs root")
	}
	ctx := testCtx()
	cs := newContentStore(t)
	index, host, other := twoPlatforms(t)
	writeBlobs(t, cs, index.Blobs)
	sn, err := naive.NewSnapshotter(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := &countingApplier{Applier: apply.NewFileSystemApplier(cs)}
	up := unpack.Platform{Platform: platforms.All, SnapshotterKey: "naive", Snapshotter: sn, Applier: a}

	// The index leads to the host's manifest, and its two layers only.
	n, err := unpackTarget(ctx, cs, index.Root, platforms.Default(), up)
	if err != nil || n != 1 {
		t.Fatalf("unpack: %d manifests, %v", n, err)
	}
	if a.count() != 2 {
		t.Fatalf("applied %v, want the host image's 2 layers", a.applied)
	}
	spec, err := images.ReadConfig(ctx, cs, mustConfig(t, host))
	if err != nil {
		t.Fatal(err)
	}
	top := identity.ChainID(spec.RootFS.DiffIDs).String()
	info, err := sn.Stat(ctx, top)
	if err != nil || info.Kind != snapshots.KindCommitted {
		t.Fatalf("top snapshot %s: %+v %v", top, info, err)
	}
	ci, err := cs.Info(ctx, mustConfig(t, host).Digest)
	if err != nil || ci.Labels["containerd.io/gc.ref.snapshot.naive"] != top {
		t.Fatalf("config labels %v (%v), want the top snapshot", ci.Labels, err)
	}
	// Again: nothing is applied, and the chain is as it was.
	if n, err := unpackTarget(ctx, cs, index.Root, platforms.Default(), up); err != nil || n != 1 {
		t.Fatalf("second unpack: %d, %v", n, err)
	}
	if a.count() != 2 {
		t.Fatalf("the second unpack applied %v", a.applied[2:])
	}

	// The other platform, asked for by name, has its own chain.
	if n, err := unpackTarget(ctx, cs, index.Root, platforms.Only(other.Platform), up); err != nil || n != 1 {
		t.Fatalf("unpack for %s: %d, %v", platforms.Format(other.Platform), n, err)
	}
	if a.count() != 3 {
		t.Fatalf("applied %v, want one more layer", a.applied)
	}
	// A platform the index lacks is NotFound, naming it.
	_, err = unpackTarget(ctx, cs, index.Root, images.OnlyPlatforms(ocispec.Platform{OS: "windows", Architecture: "s390x"}), up)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "windows/s390x") {
		t.Fatalf("unpack for a platform the image lacks: %v", err)
	}
}

func TestUnpackMissingLayer(t *testing.T) {
	ctx := testCtx()
	cs := newContentStore(t)
	_, host, _ := twoPlatforms(t)
	var m ocispec.Manifest
	readJSONBlob(t, host.Blobs[host.Root.Digest], &m)
	missing := m.Layers[1].Digest
	blobs := cloneBlobs(host.Blobs)
	delete(blobs, missing)
	writeBlobs(t, cs, blobs)
	sn, err := naive.NewSnapshotter(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := &countingApplier{Applier: apply.NewFileSystemApplier(cs)}
	_, err = unpackTarget(ctx, cs, host.Root, platforms.Default(), unpack.Platform{Platform: platforms.All, SnapshotterKey: "naive", Snapshotter: sn, Applier: a})
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), missing.String()) {
		t.Fatalf("unpack without layer %s: %v, want NotFound naming it", missing, err)
	}
	var committed []string
	sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindCommitted {
			committed = append(committed, info.Name)
		}
		return nil
	})
	if len(committed) > 1 {
		t.Errorf("a failed unpack left %v", committed)
	}
}

func TestImageSize(t *testing.T) {
	ctx := testCtx()
	cs := newContentStore(t)
	index, host, _ := twoPlatforms(t)
	writeBlobs(t, cs, index.Blobs)
	var m ocispec.Manifest
	readJSONBlob(t, host.Blobs[host.Root.Digest], &m)
	want := index.Root.Size + host.Root.Size + m.Config.Size
	for _, l := range m.Layers {
		want += l.Size
	}
	got, err := imageSize(ctx, cs, index.Root, platforms.Default())
	if err != nil || got != want {
		t.Fatalf("size %d, %v; want %d (index, host manifest, config, layers)", got, err, want)
	}
	// Layers need not be present; the manifest must be.
	if err := cs.Delete(ctx, m.Layers[0].Digest); err != nil {
		t.Fatal(err)
	}
	if got, err := imageSize(ctx, cs, index.Root, platforms.Default()); err != nil || got != want {
		t.Fatalf("size without a layer %d, %v; want %d", got, err, want)
	}
	if err := cs.Delete(ctx, host.Root.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := imageSize(ctx, cs, index.Root, platforms.Default()); !errdefs.IsNotFound(err) {
		t.Fatalf("size without the manifest: %v, want NotFound", err)
	}
}
