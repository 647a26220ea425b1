package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/platforms"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/remotes"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// memProvider is a content provider with labels, as a content store is.
type memProvider struct {
	mu     sync.Mutex
	blobs  map[digest.Digest][]byte
	labels map[digest.Digest]map[string]string
}

func newMemProvider() *memProvider {
	return &memProvider{blobs: map[digest.Digest][]byte{}, labels: map[digest.Digest]map[string]string{}}
}

func (m *memProvider) add(mediaType string, data []byte) ocispec.Descriptor {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := digest.FromBytes(data)
	m.blobs[d] = data
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

func (m *memProvider) addJSON(mediaType string, v any) ocispec.Descriptor {
	data, _ := json.Marshal(v)
	return m.add(mediaType, data)
}

type memReaderAt struct{ *bytes.Reader }

func (memReaderAt) Close() error { return nil }

func (m *memProvider) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.blobs[desc.Digest]
	if !ok {
		return nil, errdefs.ErrNotFound
	}
	return memReaderAt{bytes.NewReader(data)}, nil
}

func (m *memProvider) Info(ctx context.Context, d digest.Digest) (content.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.blobs[d]
	if !ok {
		return content.Info{}, errdefs.ErrNotFound
	}
	return content.Info{Digest: d, Size: int64(len(data)), Labels: m.labels[d]}, nil
}

// image builds a manifest with a config and the given layers.
func (m *memProvider) image(platform string, layers ...[]byte) (ocispec.Descriptor, []ocispec.Descriptor) {
	p := platforms.MustParse(platform)
	config := m.addJSON(ocispec.MediaTypeImageConfig, ocispec.Image{Platform: p})
	var ls []ocispec.Descriptor
	for _, l := range layers {
		ls = append(ls, m.add(ocispec.MediaTypeImageLayerGzip, l))
	}
	mf := m.addJSON(ocispec.MediaTypeImageManifest, ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: ls})
	mf.Platform = &p
	return mf, append([]ocispec.Descriptor{config}, ls...)
}

func pusherFor(t *testing.T, f *fakeRegistry, auth Authorizer, ref string) remotes.Pusher {
	t.Helper()
	p, err := NewResolver(ResolverOptions{Hosts: f.hosts(auth)}).Pusher(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPushContentUploadAndTag(t *testing.T) {
	f := newFakeRegistry(t)
	ts := &tokenServer{user: "u", pass: "p"}
	f.bearerAuth(ts)
	auth := NewDockerAuthorizer(WithAuthClient(f.srv.Client()), WithAuthCreds(creds("u", "p")))
	m := newMemProvider()
	mf, blobs := m.image("linux/amd64", randBytes(200_000, 7), randBytes(1000, 8))
	ref := f.host() + "/lib/new:v2"
	ctx := context.Background()

	if err := remotes.PushContent(ctx, pusherFor(t, f, auth, ref), mf, m, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if got, ok := f.blob("lib/new", b.Digest); !ok || digest.FromBytes(got) != b.Digest {
			t.Fatalf("blob %s not in the registry", b.Digest)
		}
	}
	tagged, ok := f.manifestAt("lib/new", "v2")
	if !ok || digest.FromBytes(tagged.data) != mf.Digest || tagged.mediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("tag v2: %v %s", ok, tagged.mediaType)
	}
	// Every blob before the manifest.
	seen := f.seen()
	manifestPut := slices.Index(seen, "PUT /v2/lib/new/manifests/v2")
	for i, s := range seen {
		if strings.HasPrefix(s, "PUT /v2/lib/new/blobs/") && i > manifestPut {
			t.Fatalf("blob upload after the manifest: %q", seen)
		}
	}
	for _, s := range ts.issued {
		if !strings.HasPrefix(s, "repository:lib/new:pull,push") {
			t.Fatalf("token scopes %q: want pull,push", ts.issued)
		}
	}

	// Pushing again changes nothing.
	f.requests = nil
	if err := remotes.PushContent(ctx, pusherFor(t, f, auth, ref), mf, m, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if n := f.count("PUT", "") + f.count("POST", "/blobs/uploads/"); n != 0 {
		t.Fatalf("second push wrote: %q", f.seen())
	}

	// And it resolves.
	_, desc, err := NewResolver(ResolverOptions{Hosts: f.hosts(auth)}).Resolve(ctx, ref)
	if err != nil || desc.Digest != mf.Digest {
		t.Fatalf("Resolve after push: %+v %v", desc, err)
	}
}

func TestPushContentMount(t *testing.T) {
	for _, noMount := range []bool{false, true} {
		f := newFakeRegistry(t)
		f.noMount = noMount
		m := newMemProvider()
		shared := randBytes(50_000, 9)
		f.putBlob("lib/base", shared)
		mf, blobs := m.image("linux/amd64", shared)
		layer := blobs[1]
		m.labels[layer.Digest] = map[string]string{
			images.LabelDistributionSource + "." + f.host(): "lib/base",
			images.LabelDistributionSource + ".other.io":    "elsewhere/x",
		}
		ref := f.host() + "/lib/app:v1"
		if err := remotes.PushContent(context.Background(), pusherFor(t, f, nil, ref), mf, m, nil, nil, nil); err != nil {
			t.Fatal(err)
		}
		if got, ok := f.blob("lib/app", layer.Digest); !ok || !bytes.Equal(got, shared) {
			t.Fatalf("noMount=%v: layer not in lib/app", noMount)
		}
		mounts, uploads := 0, 0
		for _, r := range f.requests {
			if r.URL.Query().Get("mount") == layer.Digest.String() && r.URL.Query().Get("from") == "lib/base" {
				mounts++
			}
			if r.Method == "PUT" && r.URL.Query().Get("digest") == layer.Digest.String() {
				uploads++
			}
		}
		if mounts != 1 || (noMount && uploads != 1) || (!noMount && uploads != 0) {
			t.Fatalf("noMount=%v: %d mounts, %d uploads of the layer: %q", noMount, mounts, uploads, f.seen())
		}
		if noMount && f.count("POST", "/blobs/uploads/") != 2 {
			// One mount that became the layer's upload, one for the config.
			t.Fatalf("an extra upload was started: %q", f.seen())
		}
	}
}

func TestPushContentPlatforms(t *testing.T) {
	f := newFakeRegistry(t)
	m := newMemProvider()
	amd, amdBlobs := m.image("linux/amd64", randBytes(1000, 10))
	arm, armBlobs := m.image("linux/arm64", randBytes(1000, 11))
	idx := m.addJSON(ocispec.MediaTypeImageIndex, ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{amd, arm}})
	ref := f.host() + "/lib/multi:v1"
	if err := remotes.PushContent(context.Background(), pusherFor(t, f, nil, ref), idx, m, nil, platforms.Only(platforms.MustParse("linux/amd64")), nil); err != nil {
		t.Fatal(err)
	}
	for _, b := range amdBlobs {
		if _, ok := f.blob("lib/multi", b.Digest); !ok {
			t.Fatalf("amd64 blob %s missing", b.Digest)
		}
	}
	for _, b := range armBlobs[1:] {
		if _, ok := f.blob("lib/multi", b.Digest); ok {
			t.Fatalf("arm64 blob %s pushed", b.Digest)
		}
	}
	if _, ok := f.manifestAt("lib/multi", arm.Digest.String()); ok {
		t.Fatal("arm64 manifest pushed")
	}
	tagged, _ := f.manifestAt("lib/multi", "v1")
	if digest.FromBytes(tagged.data) != idx.Digest {
		t.Fatal("the tag does not end on the index")
	}
}

func TestPushWriterChecks(t *testing.T) {
	f := newFakeRegistry(t)
	ctx := context.Background()
	p := pusherFor(t, f, nil, f.host()+"/lib/x:v1")
	data := randBytes(5000, 12)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(data), Size: int64(len(data))}

	// Wrong content: Commit refuses, the registry gets nothing.
	w, err := p.Push(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(data)
	bad[0] ^= 1
	if _, err := w.Write(bad); err != nil {
		t.Fatal(err)
	}
	wantKind(t, w.Commit(ctx, desc.Size, desc.Digest), errdefs.ErrFailedPrecondition, digest.FromBytes(bad).String())
	w.Close()
	// Too much: refused at Write.
	w, _ = p.Push(ctx, desc)
	_, err = w.Write(append(bytes.Clone(data), 0))
	wantKind(t, err, errdefs.ErrFailedPrecondition, "more than")
	w.Close()
	if _, ok := f.blob("lib/x", desc.Digest); ok {
		t.Fatal("bad content reached the registry")
	}

	// Right content, written in pieces.
	w, _ = p.Push(ctx, desc)
	if _, err := io.Copy(w, io.MultiReader(bytes.NewReader(data[:10]), bytes.NewReader(data[10:]))); err != nil {
		t.Fatal(err)
	}
	if st, _ := w.Status(); st.Offset != desc.Size || st.Total != desc.Size {
		t.Fatalf("status %+v", st)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Push(ctx, desc); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("pushing again: %v, want AlreadyExists", err)
	}

	// A manifest pinned by digest is PUT by digest.
	mp := pusherFor(t, f, nil, f.host()+"/lib/x@"+desc.Digest.String())
	mdata := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}`)
	mdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mdata), Size: int64(len(mdata))}
	w, err = mp.Push(ctx, mdesc)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(mdata)
	if err := w.Commit(ctx, mdesc.Size, mdesc.Digest); err != nil {
		t.Fatal(err)
	}
	if f.count("PUT", "/manifests/"+mdesc.Digest.String()) != 1 {
		t.Fatalf("manifest not PUT by digest: %q", f.seen())
	}
}

func TestPushErrorsNameTheRegistryError(t *testing.T) {
	f := newFakeRegistry(t)
	f.fail = func(r *http.Request) (int, string) {
		if r.Method == http.MethodPost {
			return http.StatusForbidden, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`
		}
		return 0, ""
	}
	_, err := pusherFor(t, f, nil, f.host()+"/lib/x:v1").Push(context.Background(), ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("x"), Size: 1})
	wantKind(t, err, errdefs.ErrPermissionDenied, "DENIED: requested access to the resource is denied")
}

// newStore is a content store in a temporary directory.
func newStore(t *testing.T) content.Store {
	s, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFetchHandlerTruncatedResumes(t *testing.T) {
	f := newFakeRegistry(t)
	// Bigger than a Seek reads through, so the resume is a ranged GET.
	data := randBytes(3<<20, 13)
	desc := f.putBlob("lib/img", data)
	// The connection drops at 2 MiB and the registry then fails every
	// resume: the fetch fails with 2 MiB in its ingest.
	f.dropAfter, f.drops = 2<<20, 1
	f.fail = func(r *http.Request) (int, string) {
		if r.Header.Get("Range") != "" {
			return http.StatusServiceUnavailable, ""
		}
		return 0, ""
	}
	ctx := context.Background()
	store := newStore(t)
	fe, _ := NewResolver(ResolverOptions{Hosts: f.hosts(nil)}).Fetcher(ctx, f.host()+"/lib/img:v1")

	_, err := remotes.FetchHandler(store, fe)(ctx, desc)
	if !errdefs.IsUnavailable(err) {
		t.Fatalf("interrupted fetch: %v, want Unavailable", err)
	}
	if _, err := store.Info(ctx, desc.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("truncated blob committed: %v", err)
	}
	ref := remotes.MakeRefKey(ctx, desc)
	st, err := store.Status(ctx, ref)
	if err != nil || st.Offset != 2<<20 {
		t.Fatalf("ingest %s: %+v %v; want 2 MiB kept", ref, st, err)
	}

	f.fail = nil
	f.requests = nil
	if _, err := remotes.FetchHandler(store, fe)(ctx, desc); err != nil {
		t.Fatal(err)
	}
	got, err := content.ReadBlob(ctx, store, desc)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("blob after resume: %d bytes, %v", len(got), err)
	}
	// The resume is one GET, ranged from where the ingest stopped.
	if seen := f.seen(); len(seen) != 1 || !strings.HasSuffix(seen[0], "Range:bytes=2097152-") {
		t.Fatalf("resume requests %q: want one GET from 2 MiB", seen)
	}
	// Present: nothing fetched.
	f.requests = nil
	if _, err := remotes.FetchHandler(store, fe)(ctx, desc); err != nil || len(f.seen()) != 0 {
		t.Fatalf("fetch of present blob: %v, requests %q", err, f.seen())
	}
}

func TestFetchHandlerDigestMismatch(t *testing.T) {
	f := newFakeRegistry(t)
	data := randBytes(10_000, 14)
	desc := f.putBlob("lib/img", data)
	f.tamper = true
	ctx := context.Background()
	store := newStore(t)
	fe, _ := NewResolver(ResolverOptions{Hosts: f.hosts(nil)}).Fetcher(ctx, f.host()+"/lib/img:v1")

	_, err := remotes.FetchHandler(store, fe)(ctx, desc)
	wantKind(t, err, errdefs.ErrFailedPrecondition, "the remote sent content with digest")
	if _, err := store.Info(ctx, desc.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("bad blob committed: %v", err)
	}
	// The bad bytes are gone: a retry starts from nothing and succeeds.
	if st, err := store.Status(ctx, remotes.MakeRefKey(ctx, desc)); err == nil && st.Offset != 0 {
		t.Fatalf("ingest kept %d bad bytes", st.Offset)
	}
	f.tamper = false
	if _, err := remotes.FetchHandler(store, fe)(ctx, desc); err != nil {
		t.Fatal(err)
	}
	if got, _ := content.ReadBlob(ctx, store, desc); !bytes.Equal(got, data) {
		t.Fatal("blob differs")
	}
}
