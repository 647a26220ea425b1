package diff

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/llitfkitfk/containerd/api/convert"
	api "github.com/llitfkitfk/containerd/api/services/diff/v1"
	"github.com/llitfkitfk/containerd/api/types"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/diff/apply"
	"github.com/llitfkitfk/containerd/diff/walking"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/mount"
)

// fakeDiffer records what it was asked and answers with err, or with a
// descriptor naming itself.
type fakeDiffer struct {
	name   string
	err    error
	mounts [][]mount.Mount
	apply  diff.ApplyConfig
	cmp    diff.Config
}

func (f *fakeDiffer) Apply(ctx context.Context, desc ocispec.Descriptor, mounts []mount.Mount, opts ...diff.ApplyOpt) (ocispec.Descriptor, error) {
	for _, o := range opts {
		o(ctx, desc, &f.apply)
	}
	f.mounts = append(f.mounts, mounts)
	if f.err != nil {
		return ocispec.Descriptor{}, f.err
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString(f.name), Size: 1}, nil
}

func (f *fakeDiffer) Compare(ctx context.Context, lower, upper []mount.Mount, opts ...diff.Opt) (ocispec.Descriptor, error) {
	for _, o := range opts {
		o(&f.cmp)
	}
	f.mounts = append(f.mounts, lower, upper)
	if f.err != nil {
		return ocispec.Descriptor{}, f.err
	}
	return ocispec.Descriptor{MediaType: f.cmp.MediaType, Digest: digest.FromString(f.name), Size: 2,
		Annotations: map[string]string{"by": f.name}}, nil
}

func serve(t *testing.T, differs ...Differ) api.DiffClient {
	t.Helper()
	svc := &service{local: NewLocal(differs...)}
	return api.NewDiffClient(testutil.Serve(t, svc.Register))
}

var layerDesc = &types.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("layer").String(), Size: 5}

// A differ that does not do a call passes it on to the next; its answer,
// success or not, is the service's.
func TestOrderAndOptions(t *testing.T) {
	skip := &fakeDiffer{name: "skip", err: errdefs.ErrNotImplemented}
	second := &fakeDiffer{name: "second"}
	c := serve(t, skip, second)
	ctx := context.Background()
	mounts := []*types.Mount{{Type: "bind", Source: "/src", Target: "sub", Options: []string{"rbind", "rw"}}}
	payload, _ := anypb.New(timestamppb.Now())

	resp, err := c.Apply(ctx, &api.ApplyRequest{Diff: layerDesc, Mounts: mounts,
		Payloads: map[string]*anypb.Any{"m": payload}, SyncFs: true})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Applied.Digest != digest.FromString("second").String() || resp.Applied.MediaType != ocispec.MediaTypeImageLayer {
		t.Errorf("applied %v", resp.Applied)
	}
	if len(skip.mounts) != 1 || len(second.mounts) != 1 {
		t.Fatalf("calls: skip %d, second %d", len(skip.mounts), len(second.mounts))
	}
	if m := second.mounts[0]; len(m) != 1 || m[0].Type != "bind" || m[0].Source != "/src" || m[0].Target != "sub" || len(m[0].Options) != 2 {
		t.Errorf("mounts %+v", m)
	}
	if !second.apply.SyncFs || second.apply.ProcessorPayloads["m"] == nil {
		t.Errorf("apply config %+v", second.apply)
	}

	epoch := time.Unix(1700000000, 0).UTC()
	dr, err := c.Diff(ctx, &api.DiffRequest{Left: nil, Right: mounts, MediaType: ocispec.MediaTypeImageLayer,
		Ref: "r", Labels: map[string]string{"l": "v"}, SourceDateEpoch: timestamppb.New(epoch)})
	if err != nil {
		t.Fatal(err)
	}
	if dr.Diff.Digest != digest.FromString("second").String() || dr.Diff.Annotations["by"] != "second" || dr.Diff.MediaType != ocispec.MediaTypeImageLayer {
		t.Errorf("diff %v", dr.Diff)
	}
	cfg := second.cmp
	if cfg.Reference != "r" || cfg.Labels["l"] != "v" || cfg.SourceDateEpoch == nil || !cfg.SourceDateEpoch.Equal(epoch) {
		t.Errorf("compare config %+v", cfg)
	}

	// The first differ's own failure is final.
	failing := &fakeDiffer{name: "failing", err: fmt.Errorf("no blob: %w", errdefs.ErrNotFound)}
	c = serve(t, failing, second)
	_, err = c.Apply(ctx, &api.ApplyRequest{Diff: layerDesc})
	testutil.CheckCode(t, "apply failing", err, codes.NotFound)
	_, err = c.Diff(ctx, &api.DiffRequest{})
	testutil.CheckCode(t, "diff failing", err, codes.NotFound)

	// No differ does it.
	c = serve(t, skip)
	_, err = c.Apply(ctx, &api.ApplyRequest{Diff: layerDesc})
	testutil.CheckCode(t, "apply unimplemented", err, codes.Unimplemented)

	_, err = c.Apply(ctx, &api.ApplyRequest{})
	testutil.CheckCode(t, "apply without a descriptor", err, codes.InvalidArgument)
	_, err = c.Apply(ctx, &api.ApplyRequest{Diff: &types.Descriptor{Digest: "nope"}})
	testutil.CheckCode(t, "apply with a bad digest", err, codes.InvalidArgument)
}

// With the walking differ: a layer applied onto a directory, and the
// directory compared with an empty one, give back the same layer.
func TestWalkingRoundTrip(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("the walking differ mounts, which needs root")
	}
	cs, err := local.NewStore(filepath.Join(t.TempDir(), "content"))
	if err != nil {
		t.Fatal(err)
	}
	c := serve(t, walking.Differ{Comparer: walking.NewWalkingDiff(cs), Applier: apply.NewFileSystemApplier(cs)})
	ctx := context.Background()

	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	mtime := time.Unix(1700000000, 0)
	tw.WriteHeader(&tar.Header{Name: "dir/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime})
	tw.WriteHeader(&tar.Header{Name: "dir/f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5, ModTime: mtime})
	tw.Write([]byte("hello"))
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes())
	zw.Close()
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(gz.Bytes()), Size: int64(gz.Len())}
	if err := content.WriteBlob(ctx, cs, "layer", bytes.NewReader(gz.Bytes()), desc); err != nil {
		t.Fatal(err)
	}

	// Without mounts there is nothing to apply onto: refused, before
	// anything is unpacked anywhere (it used to go into the system temp
	// directory, and stay there).
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	_, err = c.Apply(ctx, &api.ApplyRequest{Diff: convert.DescriptorToProto(desc)})
	testutil.CheckCode(t, "apply without mounts", err, codes.InvalidArgument)
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("apply without mounts left %v in the temp directory", entries)
	}

	upper, lower := t.TempDir(), t.TempDir()
	bind := func(dir, mode string) []*types.Mount {
		return []*types.Mount{{Type: "bind", Source: dir, Options: []string{"rbind", mode}}}
	}
	resp, err := c.Apply(ctx, &api.ApplyRequest{Diff: convert.DescriptorToProto(desc), Mounts: bind(upper, "rw")})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Applied.Digest != digest.FromBytes(raw.Bytes()).String() {
		t.Errorf("applied %v, want the diff ID %v", resp.Applied, digest.FromBytes(raw.Bytes()))
	}
	if b, err := os.ReadFile(filepath.Join(upper, "dir", "f")); err != nil || string(b) != "hello" {
		t.Fatalf("applied file: %q, %v", b, err)
	}

	dr, err := c.Diff(ctx, &api.DiffRequest{Left: bind(lower, "ro"), Right: bind(upper, "ro"), MediaType: ocispec.MediaTypeImageLayer})
	if err != nil {
		t.Fatal(err)
	}
	made := convert.DescriptorFromProto(dr.Diff)
	ra, err := cs.ReaderAt(ctx, made)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	tr := tar.NewReader(content.NewReader(ra))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if len(names) != 2 || names[0] != "dir/" || names[1] != "dir/f" {
		t.Errorf("layer made from the directory holds %q", names)
	}
}
