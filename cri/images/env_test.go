package images

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/content"
	contentlocal "github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/metadata"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/snapshots/naive"
)

// env is a daemon's worth of stores in a temporary directory (the real
// content store, metadata database and naive snapshotter) and an image
// service over them.
type env struct {
	t      *testing.T
	dir    string
	ctx    context.Context // in the CRI's namespace
	db     *metadata.DB
	cs     content.Store
	is     images.Store
	leases leases.Manager
	sn     snapshots.Snapshotter
	cfg    *config.Config
	svc    *Service
}

func newEnv(t *testing.T, configure func(*config.Config)) *env {
	t.Helper()
	dir := t.TempDir()
	backing, err := contentlocal.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	backingSn := map[string]snapshots.Snapshotter{}
	for _, name := range []string{"naive", "alt"} {
		sn, err := naive.NewSnapshotter(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		backingSn[name] = sn
	}
	ctx := namespaces.WithNamespace(context.Background(), config.Namespace)
	db, err := metadata.Open(ctx, filepath.Join(dir, "meta.db"), backing, backingSn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg := config.Default()
	cfg.Containerd.Snapshotter = "naive"
	cfg.Registry.ConfigPath = filepath.Join(dir, "certs.d")
	cfg.RootDir = filepath.Join(dir, "root", "io.containerd.grpc.v1.cri")
	if configure != nil {
		configure(cfg)
	}
	if err := cfg.Validate(func(string) {}); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, ctx: ctx, db: db, cs: db.ContentStore(), is: metadata.NewImageStore(db),
		leases: metadata.NewLeaseManager(db), sn: db.Snapshotter("naive"), cfg: cfg}
	e.svc = e.newService()
	return e
}

// newService is a new image service over the env's stores, as after a
// daemon restart, loaded.
func (e *env) newService() *Service {
	e.t.Helper()
	svc, err := New(e.cfg, Deps{
		Content:      e.cs,
		Images:       e.is,
		Snapshotters: map[string]snapshots.Snapshotter{"naive": e.sn, "alt": e.db.Snapshotter("alt")},
		Leases:       e.leases,
		Applier:      testutil.DirApplier{CS: e.cs},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	// Requests come without a namespace.
	if err := svc.Load(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	return svc
}

// pull pulls ref through the gRPC method, failing the test on error.
func (e *env) pull(ref string, auth *runtime.AuthConfig) string {
	e.t.Helper()
	resp, err := e.svc.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}, Auth: auth})
	if err != nil {
		e.t.Fatalf("pull %s: %v", ref, err)
	}
	return resp.ImageRef
}

// status is ImageStatus of ref (nil if absent).
func (e *env) status(ref string) *runtime.Image {
	e.t.Helper()
	resp, err := e.svc.ImageStatus(context.Background(), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: ref}})
	if err != nil {
		e.t.Fatalf("status %s: %v", ref, err)
	}
	return resp.Image
}

// records returns the names of the image records in the CRI namespace
// with their targets' digests.
func (e *env) records() map[string]images.Image {
	e.t.Helper()
	recs, err := e.is.List(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]images.Image{}
	for _, r := range recs {
		out[r.Name] = r
	}
	return out
}

// noLeases fails the test if a lease is left.
func (e *env) noLeases() {
	e.t.Helper()
	ls, err := e.leases.List(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(ls) != 0 {
		e.t.Errorf("leases left behind: %v", ls)
	}
}

// hostsToml makes config_path/<host>/hosts.toml send host's pulls to
// mirror (a loopback registry, over http) before the host itself.
func (e *env) hostsToml(host, mirror string) {
	e.t.Helper()
	dir := filepath.Join(e.cfg.Registry.ConfigPath, host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	text := fmt.Sprintf("server = \"https://%s\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", host, mirror)
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// testImage is a small image for the host's platform: one layer with a
// file naming it, and cfg as its runtime config.
func testImage(t *testing.T, name string, cfg ocispec.ImageConfig) testutil.Image {
	t.Helper()
	img, err := testutil.NewImage(testutil.HostPlatform(), cfg, testutil.TarLayer(testutil.Layer{"etc/": "", "etc/name": name + "\n"}))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// configOf returns the config descriptor of a single-platform image.
func configOf(t *testing.T, img testutil.Image) ocispec.Manifest {
	t.Helper()
	var m ocispec.Manifest
	if err := json.Unmarshal(img.Blobs[img.Root.Digest], &m); err != nil {
		t.Fatal(err)
	}
	return m
}
