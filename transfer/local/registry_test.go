package local

import (
	"context"
	"net/http"
	"testing"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

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
