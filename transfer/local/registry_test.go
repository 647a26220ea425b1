package local

import (
	"context"
	"crypto/rand"
	"net/http"
	"testing"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/remotes"
	"github.com/llitfkitfk/containerd/remotes/docker"
	"github.com/llitfkitfk/containerd/transfer"
)

// registryRef is a registry reference as a transfer source and
// destination, over the registry client.
type registryRef struct {
	ref      string
	resolver remotes.Resolver
}

func newRegistryRef(ref string) *registryRef {
	hosts := func(host string) ([]docker.RegistryHost, error) {
		return []docker.RegistryHost{{Client: http.DefaultClient, Host: host, Scheme: "http", Path: "/v2", Capabilities: docker.HostCapabilityAll}}, nil
	}
	return &registryRef{ref: ref, resolver: docker.NewResolver(docker.ResolverOptions{Hosts: hosts})}
}

func (r *registryRef) String() string { return r.ref }
func (r *registryRef) Resolve(ctx context.Context) (string, ocispec.Descriptor, error) {
	return r.resolver.Resolve(ctx, r.ref)
}
func (r *registryRef) Fetcher(ctx context.Context, ref string) (remotes.Fetcher, error) {
	return r.resolver.Fetcher(ctx, ref)
}
func (r *registryRef) Pusher(ctx context.Context, desc ocispec.Descriptor) (remotes.Pusher, error) {
	return r.resolver.Pusher(ctx, r.ref)
}

// Push to a real registry and pull back, unpacked, through the registry
// client: the transferrer and the client agree on their contract.
func TestRegistryRoundTrip(t *testing.T) {
	addr := testutil.StartRegistry(t, testutil.RegistryOptions{}).Host
	e := newEnv(t)
	img := newImage(t, []ocispec.Platform{host, other}, true, twoLayers()...)
	if err := e.svc.Transfer(e.ctx, archiveOf(img, "local:1"), &fakeStore{}); err != nil {
		t.Fatal(err)
	}
	ref := addr + "/test/app:1"
	var pushed events
	if err := e.svc.Transfer(e.ctx, &fakeStore{name: "local:1"}, newRegistryRef(ref), transfer.WithProgress(pushed.record)); err != nil {
		t.Fatalf("push: %v", err)
	}
	var uploaded int
	for _, p := range pushed.all() {
		if p.Event == "complete" {
			uploaded++
		}
	}
	if uploaded != len(img.blobs) {
		t.Errorf("%d blobs reported complete, want %d", uploaded, len(img.blobs))
	}

	b := newEnv(t)
	dst := &fakeStore{name: ref, platforms: []ocispec.Platform{host}, unpacks: []transfer.UnpackConfiguration{{Platform: host}}}
	var pulled events
	if err := b.svc.Transfer(b.ctx, newRegistryRef(ref), dst, transfer.WithProgress(pulled.record)); err != nil {
		t.Fatalf("pull: %v", err)
	}
	got, err := b.is.Get(b.ctx, ref)
	if err != nil || got.Target.Digest != img.root.Digest {
		t.Fatalf("pulled image %+v, %v", got, err)
	}
	checkUnpacked(t, b, img.diffIDs[0], "bin/second", "two for "+platforms.Format(host))
	for _, l := range img.layers[1] {
		if _, err := b.cs.Info(b.ctx, l.Digest); err == nil {
			t.Errorf("layer %s of the other platform was fetched", l.Digest)
		}
	}
	b.noLeases(t)
	var completes int
	for _, p := range pulled.all() {
		if p.Event == "complete" {
			completes++
		}
	}
	// index, one manifest, its config and two layers
	if completes != 5 {
		t.Errorf("%d blobs reported complete, want 5", completes)
	}
}

// A pull through a registry connection that drops mid-layer, and then
// refuses, fails and records nothing; the part of the layer it got is
// kept through the lease's release and a collection, and the next pull
// completes the image.
func TestRegistryFailedPullKeepsPartialLayer(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	proxy := testutil.StartFaultProxy(t, reg)
	noise := make([]byte, 1<<20)
	rand.Read(noise)
	img := newImage(t, []ocispec.Platform{host}, false, map[string]string{"noise": string(noise)})
	e := newEnv(t)
	if err := e.svc.Transfer(e.ctx, archiveOf(img, "local:1"), &fakeStore{}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Transfer(e.ctx, &fakeStore{name: "local:1"}, newRegistryRef(reg.Host+"/test/drop:1")); err != nil {
		t.Fatalf("push: %v", err)
	}

	b := newEnv(t)
	ref := proxy.Host + "/test/drop:1"
	layer := img.layers[0][0]
	proxy.Set(layer.Digest.String(), testutil.FaultDropThenFail)
	if err := b.svc.Transfer(b.ctx, newRegistryRef(ref), &fakeStore{name: ref}); err == nil {
		t.Fatal("a pull whose layer could not be fetched succeeded")
	}
	if _, err := b.is.Get(b.ctx, ref); !errdefs.IsNotFound(err) {
		t.Fatalf("image after a failed pull: %v", err)
	}
	b.noLeases(t)
	if _, err := b.db.GarbageCollect(b.ctx); err != nil {
		t.Fatal(err)
	}
	sts, err := b.cs.ListStatuses(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var kept int64
	for _, st := range sts {
		if st.Ref == remotes.MakeRefKey(b.ctx, layer) {
			kept = st.Offset
		}
	}
	if kept <= 0 || kept >= layer.Size {
		t.Fatalf("after the failed pull and a collection, %d of the layer's %d bytes are kept (statuses %+v)", kept, layer.Size, sts)
	}

	proxy.Set(layer.Digest.String(), "")
	if err := b.svc.Transfer(b.ctx, newRegistryRef(ref), &fakeStore{name: ref}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got, err := b.is.Get(b.ctx, ref); err != nil || got.Target.Digest != img.root.Digest {
		t.Fatalf("image after the retry: %+v, %v", got, err)
	}
}
