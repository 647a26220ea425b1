package images

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/snapshots"
)

// A pull by tag records the image under its id, tag and digest reference,
// managed, unpacked into the snapshotter; a pull by digest adds no tag.
func TestPullByTagAndDigest(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	e := newEnv(t, nil)
	img := testImage(t, "one", ocispec.ImageConfig{})
	if err := reg.Push("test/one", "v1", img); err != nil {
		t.Fatal(err)
	}
	m := configOf(t, img)
	wantID := m.Config.Digest.String()
	tag := reg.Ref("test/one", "v1")
	digestRef := reg.Host + "/test/one@" + img.Root.Digest.String()

	if id := e.pull(tag, nil); id != wantID {
		t.Fatalf("image_ref %s, want the config digest %s", id, wantID)
	}
	recs := e.records()
	for _, name := range []string{wantID, tag, digestRef} {
		r, ok := recs[name]
		if !ok {
			t.Fatalf("no image record %s; have %v", name, recs)
		}
		if r.Target.Digest != img.Root.Digest || r.Labels[LabelManaged] != LabelManagedValue {
			t.Errorf("record %s: target %s labels %v", name, r.Target.Digest, r.Labels)
		}
		if _, ok := r.Labels[LabelPinned]; ok {
			t.Errorf("record %s is pinned", name)
		}
	}
	if len(recs) != 3 {
		t.Errorf("records %v, want 3", recs)
	}
	// Unpacked: the chain's top snapshot is committed.
	var cfg ocispec.Image
	json.Unmarshal(img.Blobs[m.Config.Digest], &cfg)
	chain := identity.ChainID(cfg.RootFS.DiffIDs)
	e.noLeases()
	// The records alone keep the image whole: its blobs and snapshot
	// survive a collection.
	if _, err := e.db.GarbageCollect(e.ctx); err != nil {
		t.Fatal(err)
	}
	info, err := e.sn.Stat(e.ctx, chain.String())
	if err != nil || info.Kind != snapshots.KindCommitted {
		t.Fatalf("snapshot %s: %v %v", chain, info.Kind, err)
	}
	for d := range img.Blobs {
		if _, err := e.cs.Info(e.ctx, d); err != nil {
			t.Errorf("blob %s after GC: %v", d, err)
		}
	}

	st := e.status(tag)
	if st == nil || st.Id != wantID {
		t.Fatalf("status %v", st)
	}
	if !slices.Equal(st.RepoTags, []string{tag}) || !slices.Equal(st.RepoDigests, []string{digestRef}) {
		t.Errorf("tags %v digests %v", st.RepoTags, st.RepoDigests)
	}
	wantSize := img.Root.Size + m.Config.Size
	for _, l := range m.Layers {
		wantSize += l.Size
	}
	if st.Size != uint64(wantSize) {
		t.Errorf("size %d, want %d", st.Size, wantSize)
	}
	got, err := e.svc.LocalResolve(context.Background(), tag)
	if err != nil || got.ChainID != chain {
		t.Errorf("LocalResolve: chain %s (%v), want %s", got.ChainID, err, chain)
	}

	// By digest, into a fresh env: no tag.
	e2 := newEnv(t, nil)
	if id := e2.pull(digestRef, nil); id != wantID {
		t.Fatalf("pull by digest: %s", id)
	}
	st = e2.status(digestRef)
	if st == nil || len(st.RepoTags) != 0 || !slices.Equal(st.RepoDigests, []string{digestRef}) {
		t.Fatalf("status after a digest pull: %v", st)
	}
	if recs := e2.records(); len(recs) != 2 {
		t.Errorf("records %v, want id and digest reference", recs)
	}
}

// Of a multi-platform image only the host's manifest is fetched; the id
// is its config's, the digest reference the index's, and the size that
// of what the host uses, the index included.
func TestPullMultiPlatform(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	idx, host, err := testutil.MultiPlatformImage()
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Push("multi", "v1", idx); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil)
	id := e.pull(reg.Ref("multi", "v1"), nil)
	var m ocispec.Manifest
	if err := json.Unmarshal(idx.Blobs[host.Digest], &m); err != nil {
		t.Fatal(err)
	}
	if id != m.Config.Digest.String() {
		t.Fatalf("id %s, want the host manifest's config %s", id, m.Config.Digest)
	}
	want := idx.Root.Size + host.Size + m.Config.Size
	for _, l := range m.Layers {
		want += l.Size
	}
	st := e.status(id)
	if st.Size != uint64(want) || !slices.Equal(st.RepoDigests, []string{reg.Host + "/multi@" + idx.Root.Digest.String()}) {
		t.Errorf("status %v, want size %d", st, want)
	}
	var index ocispec.Index
	json.Unmarshal(idx.Blobs[idx.Root.Digest], &index)
	for _, other := range index.Manifests {
		if other.Digest == host.Digest {
			continue
		}
		if _, err := e.cs.Info(e.ctx, other.Digest); !errdefs.IsNotFound(err) {
			t.Errorf("another platform's manifest %s was fetched: %v", other.Digest, err)
		}
	}
}

// Names are resolved through config_path's hosts.toml: a short name is
// docker.io/library/<name>:latest, and a registry.k8s.io image comes from
// the mirror its hosts.toml names.
func TestPullThroughHostsToml(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	e := newEnv(t, nil)
	pause := testImage(t, "pause", ocispec.ImageConfig{})
	bb := testImage(t, "busybox", ocispec.ImageConfig{})
	if err := reg.Push("x", "1", pause); err != nil {
		t.Fatal(err)
	}
	if err := reg.Push("library/busybox", "latest", bb); err != nil {
		t.Fatal(err)
	}
	e.hostsToml("registry.k8s.io", reg.Host)
	e.hostsToml("docker.io", reg.Host)

	id := e.pull("registry.k8s.io/x:1", nil)
	if st := e.status("registry.k8s.io/x:1"); st == nil || st.Id != id || !slices.Equal(st.RepoTags, []string{"registry.k8s.io/x:1"}) {
		t.Fatalf("status %v", st)
	}
	id = e.pull("busybox", nil)
	st := e.status("docker.io/library/busybox:latest")
	if st == nil || st.Id != id || !slices.Equal(st.RepoTags, []string{"docker.io/library/busybox:latest"}) {
		t.Fatalf("status %v", st)
	}
	if st := e.status("busybox"); st == nil || st.Id != id {
		t.Fatalf("status of the short name: %v", st)
	}
	if want := "docker.io/library/busybox@" + bb.Root.Digest.String(); !slices.Equal(st.RepoDigests, []string{want}) {
		t.Errorf("digests %v, want %s", st.RepoDigests, want)
	}
}

// containerd 1.x's registry.mirrors, without config_path, still send a
// host's pulls to its mirrors ("*" for hosts without their own).
func TestPullThroughLegacyMirrors(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	pause := testImage(t, "pause", ocispec.ImageConfig{})
	if err := reg.Push("x", "1", pause); err != nil {
		t.Fatal(err)
	}
	if err := reg.Push("library/busybox", "latest", pause); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *config.Config) {
		c.Registry.ConfigPath = ""
		c.Registry.Mirrors = map[string]config.Mirror{
			"registry.k8s.io": {Endpoints: []string{reg.Host}},
			"*":               {Endpoints: []string{"http://" + reg.Host}},
		}
	})
	e.pull("registry.k8s.io/x:1", nil)
	e.pull("busybox", nil)
	if st := e.status("docker.io/library/busybox:latest"); st == nil {
		t.Fatal("busybox not pulled through the * mirror")
	}
}

// The runtime handler of the request (or, from older kubelets, the
// sandbox's annotation) chooses the snapshotter unpacked into.
func TestPullForRuntimeHandler(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	img := testImage(t, "rh", ocispec.ImageConfig{})
	if err := reg.Push("rh", "v1", img); err != nil {
		t.Fatal(err)
	}
	var cfg ocispec.Image
	json.Unmarshal(img.Blobs[configOf(t, img).Config.Digest], &cfg)
	chain := identity.ChainID(cfg.RootFS.DiffIDs).String()
	configure := func(c *config.Config) {
		c.Containerd.Runtimes["alt"] = config.Runtime{Type: config.DefaultRuntimeType, Snapshotter: "alt"}
		c.Containerd.Runtimes["gone"] = config.Runtime{Type: config.DefaultRuntimeType, Snapshotter: "absent"}
	}
	for _, req := range []*runtime.PullImageRequest{
		{Image: &runtime.ImageSpec{Image: reg.Ref("rh", "v1"), RuntimeHandler: "alt"}},
		{Image: &runtime.ImageSpec{Image: reg.Ref("rh", "v1")}, SandboxConfig: &runtime.PodSandboxConfig{Annotations: map[string]string{runtimeHandlerAnnotation: "alt"}}},
	} {
		e := newEnv(t, configure)
		if _, err := e.svc.PullImage(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.Snapshotter("alt").Stat(e.ctx, chain); err != nil {
			t.Errorf("not unpacked into alt: %v", err)
		}
		if _, err := e.sn.Stat(e.ctx, chain); !errdefs.IsNotFound(err) {
			t.Errorf("unpacked into the default snapshotter too: %v", err)
		}
	}
	e := newEnv(t, configure)
	_, err := e.svc.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: reg.Ref("rh", "v1"), RuntimeHandler: "gone"}})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "absent") {
		t.Errorf("pull for a handler whose snapshotter is not loaded: %v", err)
	}
}

// With discard_unpacked_layers the compressed layers go once unpacked;
// the image stays whole to the CRI.
func TestDiscardUnpackedLayers(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	img := testImage(t, "discard", ocispec.ImageConfig{})
	if err := reg.Push("discard", "v1", img); err != nil {
		t.Fatal(err)
	}
	layer := configOf(t, img).Layers[0].Digest
	for _, discard := range []bool{false, true} {
		e := newEnv(t, func(c *config.Config) { c.Containerd.DiscardUnpackedLayers = discard })
		e.pull(reg.Ref("discard", "v1"), nil)
		if _, err := e.db.GarbageCollect(e.ctx); err != nil {
			t.Fatal(err)
		}
		_, err := e.cs.Info(e.ctx, layer)
		if discard != errdefs.IsNotFound(err) {
			t.Errorf("discard %v: layer after GC: %v", discard, err)
		}
		if st := e.status(reg.Ref("discard", "v1")); st == nil {
			t.Errorf("discard %v: image gone", discard)
		}
	}
}

// Credentials come from the request (username and password, or "auth")
// or, without any, from the config's registry.configs.<host>.auth.
func TestPullAuth(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{User: "alice", Password: "s3cret"})
	img := testImage(t, "private", ocispec.ImageConfig{})
	if err := reg.Push("private/img", "v1", img); err != nil {
		t.Fatal(err)
	}
	ref := reg.Ref("private/img", "v1")
	pull := func(e *env, auth *runtime.AuthConfig) error {
		_, err := e.svc.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}, Auth: auth})
		return err
	}

	e := newEnv(t, nil)
	for _, c := range []struct {
		name string
		auth *runtime.AuthConfig
	}{
		{"anonymous", nil},
		{"wrong password", &runtime.AuthConfig{Username: "alice", Password: "nope"}},
		{"for another server", &runtime.AuthConfig{Username: "alice", Password: "s3cret", ServerAddress: "https://other.example.com"}},
	} {
		err := pull(e, c.auth)
		if status.Code(err) != codes.Unknown {
			t.Fatalf("%s: pull: %v, want Unknown as containerd's", c.name, err)
		}
		if !strings.Contains(err.Error(), ref) {
			t.Errorf("%s: error %v does not name %s", c.name, err, ref)
		}
	}
	if recs := e.records(); len(recs) != 0 {
		t.Fatalf("failed pulls left records %v", recs)
	}
	e.noLeases()

	for _, auth := range []*runtime.AuthConfig{
		{Username: "alice", Password: "s3cret"},
		{Auth: base64.StdEncoding.EncodeToString([]byte("alice:s3cret")), ServerAddress: reg.Host},
	} {
		e := newEnv(t, nil)
		if err := pull(e, auth); err != nil {
			t.Fatalf("pull with %v: %v", auth, err)
		}
	}
	if err := pull(newEnv(t, nil), &runtime.AuthConfig{Auth: "!!!"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad base64 auth: %v", err)
	}

	// A registry token goes as the bearer token, with no token request.
	proxy := testutil.StartFaultProxy(t, reg)
	proxy.RequireToken(true)
	e = newEnv(t, nil)
	e.hostsToml(proxy.Host, proxy.Host)
	ref2 := proxy.Host + "/private/img:v1"
	if _, err := e.svc.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref2},
		Auth: &runtime.AuthConfig{RegistryToken: "test-token", ServerAddress: proxy.Host}}); err != nil {
		t.Fatalf("pull with a registry token: %v", err)
	}
	for _, r := range proxy.Requests() {
		if r.Path == "/token" {
			t.Errorf("the token was asked for although given")
		}
	}
	if _, err := e.svc.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref2},
		Auth: &runtime.AuthConfig{RegistryToken: "test-token", ServerAddress: "other.example.com"}}); err != nil {
		t.Fatalf("pull with a registry token for another server: %v", err)
	}
	// Not sent to this server: the pull went through the proxy's token
	// flow (which gives anyone a token).
	if !slices.ContainsFunc(proxy.Requests(), func(r testutil.ProxiedRequest) bool { return r.Path == "/token" }) {
		t.Errorf("a registry token for another server was sent to this one")
	}

	e = newEnv(t, func(c *config.Config) {
		c.Registry.Configs = map[string]config.RegistryConfig{reg.Host: {Auth: &config.AuthConfig{Username: "alice", Password: "s3cret"}}}
	})
	if err := pull(e, nil); err != nil {
		t.Fatalf("pull with the config's credentials: %v", err)
	}
}

// ImageStatus reports the config's user as uid or username, verbose
// info as containerd's JSON, and nothing for an absent image.
func TestImageStatusUser(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	e := newEnv(t, nil)
	for _, c := range []struct {
		user     string
		uid      *int64
		username string
	}{
		{"", nil, ""},
		{"1000", ptr(int64(1000)), ""},
		{"0:0", ptr(int64(0)), ""},
		{"nobody", nil, "nobody"},
		{"www-data:www-data", nil, "www-data"},
	} {
		img := testImage(t, "user"+c.user, ocispec.ImageConfig{User: c.user, Env: []string{"A=" + c.user}})
		tag := "u" + strings.NewReplacer(":", "-").Replace(c.user)
		if err := reg.Push("users", tag, img); err != nil {
			t.Fatal(err)
		}
		e.pull(reg.Ref("users", tag), nil)
		st := e.status(reg.Ref("users", tag))
		if st == nil {
			t.Fatalf("user %q: no status", c.user)
		}
		switch {
		case c.uid == nil && st.Uid != nil, c.uid != nil && (st.Uid == nil || st.Uid.Value != *c.uid):
			t.Errorf("user %q: uid %v", c.user, st.Uid)
		}
		if st.Username != c.username {
			t.Errorf("user %q: username %q", c.user, st.Username)
		}
	}

	resp, err := e.svc.ImageStatus(context.Background(), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: reg.Ref("users", "u1000")}, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		ChainID   string        `json:"chainID"`
		ImageSpec ocispec.Image `json:"imageSpec"`
	}
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
		t.Fatalf("info %q: %v", resp.Info["info"], err)
	}
	if info.ImageSpec.Config.User != "1000" || !strings.HasPrefix(info.ChainID, "sha256:") {
		t.Errorf("verbose info %+v", info)
	}

	for _, ref := range []string{reg.Ref("users", "absent"), "sha256:" + strings.Repeat("0", 64), "", "NOT a ref!"} {
		resp, err := e.svc.ImageStatus(context.Background(), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: ref}})
		if err != nil || resp.Image != nil {
			t.Errorf("status of absent %q: %v, %v", ref, resp.Image, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// ListImages lists each image once with all its names; a filter keeps
// the image it names.
func TestListImages(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	e := newEnv(t, nil)
	a := testImage(t, "a", ocispec.ImageConfig{})
	b := testImage(t, "b", ocispec.ImageConfig{})
	for _, p := range []struct {
		tag string
		img testutil.Image
	}{{"a1", a}, {"a2", a}, {"b", b}} {
		if err := reg.Push("list", p.tag, p.img); err != nil {
			t.Fatal(err)
		}
		e.pull(reg.Ref("list", p.tag), nil)
	}
	resp, err := e.svc.ListImages(context.Background(), &runtime.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Images) != 2 {
		t.Fatalf("%d images, want 2: %v", len(resp.Images), resp.Images)
	}
	idA := configOf(t, a).Config.Digest.String()
	for _, img := range resp.Images {
		if img.Id == idA && !slices.Equal(img.RepoTags, []string{reg.Ref("list", "a1"), reg.Ref("list", "a2")}) {
			t.Errorf("tags of a: %v", img.RepoTags)
		}
	}
	resp, err = e.svc.ListImages(context.Background(), &runtime.ListImagesRequest{Filter: &runtime.ImageFilter{Image: &runtime.ImageSpec{Image: reg.Ref("list", "a2")}}})
	if err != nil || len(resp.Images) != 1 || resp.Images[0].Id != idA {
		t.Fatalf("filtered: %v %v", resp.Images, err)
	}
	resp, err = e.svc.ListImages(context.Background(), &runtime.ListImagesRequest{Filter: &runtime.ImageFilter{Image: &runtime.ImageSpec{Image: reg.Ref("list", "none")}}})
	if err != nil || len(resp.Images) != 0 {
		t.Fatalf("filtered by an absent image: %v %v", resp.Images, err)
	}
}

// RemoveImage by any of an image's names, its id or an id prefix removes
// every record of it, and the cache entry; removing it again is no
// error.
func TestRemoveImage(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	img := testImage(t, "rm", ocispec.ImageConfig{})
	if err := reg.Push("rm", "v1", img); err != nil {
		t.Fatal(err)
	}
	if err := reg.Push("rm", "v2", img); err != nil {
		t.Fatal(err)
	}
	id := configOf(t, img).Config.Digest.String()
	for _, by := range []string{
		reg.Ref("rm", "v1"),
		reg.Host + "/rm@" + img.Root.Digest.String(),
		id,
		strings.TrimPrefix(id, "sha256:")[:12],
		id[:20],
	} {
		e := newEnv(t, nil)
		e.pull(reg.Ref("rm", "v1"), nil)
		e.pull(reg.Ref("rm", "v2"), nil)
		if got, err := e.svc.LocalResolve(context.Background(), by); err != nil || got.ID != id {
			t.Fatalf("resolve %s: %v %v", by, got.ID, err)
		}
		if _, err := e.svc.RemoveImage(context.Background(), &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: by}}); err != nil {
			t.Fatalf("remove by %s: %v", by, err)
		}
		if recs := e.records(); len(recs) != 0 {
			t.Errorf("remove by %s left %v", by, recs)
		}
		if st := e.status(id); st != nil {
			t.Errorf("remove by %s: still %v", by, st)
		}
		if _, err := e.svc.RemoveImage(context.Background(), &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: by}}); err != nil {
			t.Errorf("second remove by %s: %v", by, err)
		}
		// The collector takes the snapshots with the records.
		if _, err := e.db.GarbageCollect(e.ctx); err != nil {
			t.Fatal(err)
		}
		n := 0
		e.sn.Walk(e.ctx, func(context.Context, snapshots.Info) error { n++; return nil })
		if n != 0 {
			t.Errorf("remove by %s: %d snapshots left", by, n)
		}
	}
}

// Concurrent removals of one image all succeed, and each finds it gone
// when it returns (critest's image consistency).
func TestConcurrentRemove(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	img := testImage(t, "crm", ocispec.ImageConfig{})
	if err := reg.Push("crm", "v1", img); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil)
	id := e.pull(reg.Ref("crm", "v1"), nil)
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if _, err := e.svc.RemoveImage(context.Background(), &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: id}}); err != nil {
				t.Error(err)
			}
			resp, err := e.svc.ImageStatus(context.Background(), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: id}})
			if err != nil || resp.Image != nil {
				t.Errorf("status after remove: %v %v", resp.GetImage(), err)
			}
		})
	}
	wg.Wait()
	if recs := e.records(); len(recs) != 0 {
		t.Errorf("records left: %v", recs)
	}
}

// An id prefix two images share names neither.
func TestAmbiguousPrefix(t *testing.T) {
	c := newCache()
	for _, id := range []string{"sha256:ab" + strings.Repeat("1", 62), "sha256:ab" + strings.Repeat("2", 62)} {
		c.update(id, &Image{ID: id}, false)
	}
	if _, err := c.get("ab"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ambiguous prefix: %v", err)
	}
	if img, err := c.get("ab1"); err != nil || !strings.HasPrefix(img.ID, "sha256:ab1") {
		t.Errorf("unique prefix: %v %v", img.ID, err)
	}
	if _, err := c.get("sha256:ab2"); err != nil {
		t.Errorf("prefix with algorithm: %v", err)
	}
}

// The sandbox image is pinned and labelled so; EnsureImage pulls it only
// when absent.
func TestPinnedSandboxImage(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	proxy := testutil.StartFaultProxy(t, reg)
	pause := testImage(t, "pause", ocispec.ImageConfig{})
	other := testImage(t, "other", ocispec.ImageConfig{})
	if err := reg.Push("pause", "3.10", pause); err != nil {
		t.Fatal(err)
	}
	if err := reg.Push("other", "1", other); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *config.Config) { c.SandboxImage = "registry.k8s.io/pause:3.10" })
	e.hostsToml("registry.k8s.io", proxy.Host)

	img, err := e.svc.EnsureImage(context.Background(), "registry.k8s.io/pause:3.10", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if !img.Pinned || img.ID != configOf(t, pause).Config.Digest.String() {
		t.Fatalf("sandbox image %+v", img)
	}
	for name, r := range e.records() {
		if r.Labels[LabelPinned] != LabelPinnedValue {
			t.Errorf("record %s not labelled pinned: %v", name, r.Labels)
		}
	}
	if st := e.status("registry.k8s.io/pause:3.10"); st == nil || !st.Pinned {
		t.Fatalf("status %v", st)
	}
	seen := len(proxy.Requests())
	if _, err := e.svc.EnsureImage(context.Background(), "registry.k8s.io/pause:3.10", nil, ""); err != nil {
		t.Fatal(err)
	}
	if n := len(proxy.Requests()); n != seen {
		t.Errorf("EnsureImage of a present image asked the registry (%d requests)", n-seen)
	}
	if _, err := e.svc.EnsureImage(context.Background(), reg.Ref("missing", "1"), nil, ""); status.Code(errdefs.ToGRPC(err)) != codes.NotFound {
		t.Errorf("EnsureImage of an unknown image: %v", err)
	}
	id := e.pull(reg.Ref("other", "1"), nil)
	if st := e.status(id); st == nil || st.Pinned {
		t.Errorf("another image is pinned: %v", st)
	}
}

// A new service over the same stores (a restart) sees the same images,
// and adopts those another client put in the namespace.
func TestLoadAfterRestart(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	img := testImage(t, "load", ocispec.ImageConfig{User: "42"})
	pause := testImage(t, "pause", ocispec.ImageConfig{})
	if err := reg.Push("load", "v1", img); err != nil {
		t.Fatal(err)
	}
	if err := reg.Push("pause", "1", pause); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *config.Config) { c.SandboxImage = "" })
	e.cfg.SandboxImage = reg.Ref("pause", "1")
	id := e.pull(reg.Ref("load", "v1"), nil)
	before := e.status(id)

	// A record as `ctr -n k8s.io images import` leaves one: one name, no
	// labels (made here by a pull, then stripped).
	sandboxRef := reg.Ref("pause", "1")
	pid := e.pull(sandboxRef, nil)
	for name := range e.records() {
		if name != sandboxRef && name != id && !strings.HasPrefix(name, reg.Host+"/load") {
			if err := e.is.Delete(e.ctx, name); err != nil {
				t.Fatal(err)
			}
		}
	}
	rec := e.records()[sandboxRef]
	rec.Labels = nil
	if _, err := e.is.Update(e.ctx, rec, "labels"); err != nil {
		t.Fatal(err)
	}
	if r := e.records()[sandboxRef]; len(r.Labels) != 0 {
		t.Fatalf("labels left: %v", r.Labels)
	}

	// A record whose content is not there is left out, not fatal.
	if _, err := e.is.Create(e.ctx, images.Image{Name: "docker.io/library/broken:1", Target: ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("absent"), Size: 10}}); err != nil {
		t.Fatal(err)
	}

	e.svc = e.newService()
	if st := e.status("docker.io/library/broken:1"); st != nil {
		t.Errorf("an image without content is listed: %v", st)
	}
	after := e.status(id)
	if after == nil || !slices.Equal(after.RepoTags, before.RepoTags) || !slices.Equal(after.RepoDigests, before.RepoDigests) ||
		after.Size != before.Size || after.Uid.GetValue() != 42 {
		t.Fatalf("after restart %v, before %v", after, before)
	}
	st := e.status(sandboxRef)
	if st == nil || st.Id != pid || !st.Pinned {
		t.Fatalf("imported sandbox image after load: %v", st)
	}
	recs := e.records()
	if r, ok := recs[pid]; !ok || r.Labels[LabelManaged] != LabelManagedValue || r.Labels[LabelPinned] != LabelPinnedValue {
		t.Errorf("adopted image's id record: %v %v", ok, r.Labels)
	}
	if r := recs[sandboxRef]; r.Labels[LabelManaged] != LabelManagedValue {
		t.Errorf("adopted record labels %v", r.Labels)
	}
}

// Bad references are refused, naming them.
func TestBadReferences(t *testing.T) {
	e := newEnv(t, nil)
	for _, ref := range []string{"", "busybox/UPPER", "a b", "x@sha256:123", "busybox:bad tag", strings.Repeat("a", 64)} {
		_, err := e.svc.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "\""+ref+"\"") {
			t.Errorf("pull %q: %v", ref, err)
		}
	}
	_, err := e.svc.PullImage(context.Background(), &runtime.PullImageRequest{})
	testutil.WantCode(t, err, codes.InvalidArgument)
}

// An unknown image is NotFound; a registry gone is an error naming the
// image.
func TestPullUnknown(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	e := newEnv(t, nil)
	_, err := e.svc.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: reg.Ref("nothing", "here")}})
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), reg.Ref("nothing", "here")) {
		t.Errorf("unknown image: %v", err)
	}
	host := reg.Host
	reg.Close()
	_, err = e.svc.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: host + "/gone:1"}})
	if status.Code(err) != codes.Unknown || !strings.Contains(err.Error(), host+"/gone:1") {
		t.Errorf("registry gone: %v", err)
	}
	e.noLeases()
}

// A registry that drops a layer mid-download fails the pull and leaves
// no record, no lease, and nothing the collector keeps.
func TestPullDroppedMidway(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	proxy := testutil.StartFaultProxy(t, reg)
	img, err := testutil.NewImage(testutil.HostPlatform(), ocispec.ImageConfig{},
		testutil.TarLayer(testutil.Layer{"a": strings.Repeat("a", 1<<16)}),
		testutil.TarLayer(testutil.Layer{"b": strings.Repeat("b", 1<<16)}))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Push("drop", "v1", img); err != nil {
		t.Fatal(err)
	}
	m := configOf(t, img)
	proxy.Set(m.Layers[1].Digest.String(), testutil.FaultDropThenFail)
	e := newEnv(t, nil)
	e.hostsToml(proxy.Host, proxy.Host)
	ref := proxy.Host + "/drop:v1"
	_, err = e.svc.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}})
	if err == nil || !strings.Contains(err.Error(), ref) {
		t.Fatalf("pull through a dropping registry: %v", err)
	}
	if recs := e.records(); len(recs) != 0 {
		t.Errorf("records %v", recs)
	}
	if resp, _ := e.svc.ListImages(context.Background(), &runtime.ListImagesRequest{}); len(resp.Images) != 0 {
		t.Errorf("listed %v", resp.Images)
	}
	e.noLeases()
	if _, err := e.db.GarbageCollect(e.ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	e.sn.Walk(e.ctx, func(_ context.Context, info snapshots.Info) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d snapshots left", n)
	}
	e.cs.Walk(e.ctx, func(content.Info) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d blobs left", n)
	}

	// The registry back, the pull works.
	proxy.Set(m.Layers[1].Digest.String(), "")
	e.pull(ref, nil)
}

// A pull that stops making progress for image_pull_progress_timeout is
// cancelled, naming the reason.
func TestPullProgressTimeout(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	proxy := testutil.StartFaultProxy(t, reg)
	img := testImage(t, "stall", ocispec.ImageConfig{})
	if err := reg.Push("stall", "v1", img); err != nil {
		t.Fatal(err)
	}
	proxy.Set(configOf(t, img).Layers[0].Digest.String(), testutil.FaultStall)
	e := newEnv(t, func(c *config.Config) { c.ImagePullProgressTimeout = "1s" })
	e.hostsToml(proxy.Host, proxy.Host)
	_, err := e.svc.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: proxy.Host + "/stall:v1"}})
	if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "no progress") {
		t.Fatalf("stalled pull: %v", err)
	}
	e.noLeases()
}

// max_concurrent_downloads bounds the layers downloading at once: with
// every layer stalled, a bound of one lets one layer request out, no
// bound lets them all.
func TestMaxConcurrentDownloads(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	img, err := testutil.NewImage(testutil.HostPlatform(), ocispec.ImageConfig{},
		testutil.TarLayer(testutil.Layer{"a": "a"}), testutil.TarLayer(testutil.Layer{"b": "b"}), testutil.TarLayer(testutil.Layer{"c": "c"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Push("limit", "v1", img); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ limit, want int }{{1, 1}, {0, 3}} {
		proxy := testutil.StartFaultProxy(t, reg)
		for _, l := range configOf(t, img).Layers {
			proxy.Set(l.Digest.String(), testutil.FaultStall)
		}
		e := newEnv(t, func(cfg *config.Config) {
			cfg.MaxConcurrentDownloads = c.limit
			cfg.ImagePullProgressTimeout = "1s"
		})
		e.hostsToml(proxy.Host, proxy.Host)
		_, err := e.svc.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: proxy.Host + "/limit:v1"}})
		if status.Code(err) != codes.Aborted {
			t.Fatalf("limit %d: stalled pull: %v", c.limit, err)
		}
		n := 0
		for _, r := range proxy.Requests() {
			if r.Fault == testutil.FaultStall {
				n++
			}
		}
		if n != c.want {
			t.Errorf("limit %d: %d layer downloads started, want %d", c.limit, n, c.want)
		}
	}
}

// Concurrent pulls of one image, with one download at a time, all get
// it (run with -race).
func TestConcurrentPulls(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	img := testImage(t, "conc", ocispec.ImageConfig{})
	if err := reg.Push("conc", "v1", img); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *config.Config) { c.MaxConcurrentDownloads = 1 })
	want := configOf(t, img).Config.Digest.String()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			resp, err := e.svc.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: reg.Ref("conc", "v1")}})
			if err == nil && resp.ImageRef != want {
				err = errdefs.ErrUnknown
			}
			errs <- err
		})
		wg.Go(func() { e.svc.ListImages(context.Background(), &runtime.ListImagesRequest{}) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if st := e.status(reg.Ref("conc", "v1")); st == nil || st.Id != want {
		t.Fatalf("status %v", st)
	}
	e.noLeases()
}

// ImageFsInfo reports the snapshotter's root and what its snapshots use.
func TestImageFsInfo(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	img := testImage(t, "fs", ocispec.ImageConfig{})
	if err := reg.Push("fs", "v1", img); err != nil {
		t.Fatal(err)
	}
	// The default period: the pull itself must make the next answer
	// fresh.
	e := newEnv(t, nil)
	resp, err := e.svc.ImageFsInfo(context.Background(), &runtime.ImageFsInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ImageFilesystems) != 1 || resp.ImageFilesystems[0].UsedBytes.GetValue() != 0 {
		t.Fatalf("empty: %v", resp.ImageFilesystems)
	}
	e.pull(reg.Ref("fs", "v1"), nil)
	resp, err = e.svc.ImageFsInfo(context.Background(), &runtime.ImageFsInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	fs := resp.ImageFilesystems[0]
	if want := e.dir + "/root/io.containerd.snapshotter.v1.naive"; fs.FsId.GetMountpoint() != want {
		t.Errorf("mountpoint %q, want %q", fs.FsId.GetMountpoint(), want)
	}
	if fs.UsedBytes.GetValue() == 0 || fs.InodesUsed.GetValue() == 0 || fs.Timestamp == 0 {
		t.Errorf("after a pull: %v", fs)
	}
	if len(resp.ContainerFilesystems) != 0 {
		t.Errorf("container filesystems %v", resp.ContainerFilesystems)
	}
}
