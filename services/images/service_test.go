package images

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	eventstypes "github.com/llitfkitfk/containerd/api/events"
	api "github.com/llitfkitfk/containerd/api/services/images/v1"
	"github.com/llitfkitfk/containerd/api/types"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/metadata"
	"github.com/llitfkitfk/containerd/namespaces"
)

// fakeStore is an in-memory, namespaced images.Store.
type fakeStore struct {
	mu      sync.Mutex
	images  map[string]map[string]images.Image
	deletes []images.DeleteOptions
}

func (s *fakeStore) Get(ctx context.Context, name string) (images.Image, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return images.Image{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	img, ok := s.images[ns][name]
	if !ok {
		return images.Image{}, fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
	}
	return img, nil
}

func (s *fakeStore) List(ctx context.Context, filters ...string) ([]images.Image, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []images.Image
	for _, img := range s.images[ns] {
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (s *fakeStore) Create(ctx context.Context, img images.Image) (images.Image, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return images.Image{}, err
	}
	if err := img.Target.Digest.Validate(); err != nil {
		return images.Image{}, fmt.Errorf("target digest: %w", errdefs.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.images == nil {
		s.images = map[string]map[string]images.Image{}
	}
	if s.images[ns] == nil {
		s.images[ns] = map[string]images.Image{}
	}
	if _, ok := s.images[ns][img.Name]; ok {
		return images.Image{}, fmt.Errorf("image %q: %w", img.Name, errdefs.ErrAlreadyExists)
	}
	img.CreatedAt = time.Now().UTC()
	img.UpdatedAt = img.CreatedAt
	s.images[ns][img.Name] = img
	return img, nil
}

func (s *fakeStore) Update(ctx context.Context, img images.Image, paths ...string) (images.Image, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return images.Image{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.images[ns][img.Name]
	if !ok {
		return images.Image{}, fmt.Errorf("image %q: %w", img.Name, errdefs.ErrNotFound)
	}
	if len(paths) == 0 {
		paths = []string{"labels", "target"}
	}
	for _, p := range paths {
		switch {
		case p == "labels":
			cur.Labels = img.Labels
		case strings.HasPrefix(p, "labels."):
			k := strings.TrimPrefix(p, "labels.")
			if cur.Labels == nil {
				cur.Labels = map[string]string{}
			}
			if v, ok := img.Labels[k]; ok && v != "" {
				cur.Labels[k] = v
			} else {
				delete(cur.Labels, k)
			}
		case p == "target":
			cur.Target = img.Target
		default:
			return images.Image{}, fmt.Errorf("cannot update %q: %w", p, errdefs.ErrInvalidArgument)
		}
	}
	cur.UpdatedAt = time.Now().UTC()
	s.images[ns][img.Name] = cur
	return cur, nil
}

func (s *fakeStore) Delete(ctx context.Context, name string, opts ...images.DeleteOpt) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	var o images.DeleteOptions
	for _, opt := range opts {
		if err := opt(ctx, &o); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deletes = append(s.deletes, o)
	cur, ok := s.images[ns][name]
	if !ok {
		return fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
	}
	if o.Target != nil && o.Target.Digest != cur.Target.Digest {
		return fmt.Errorf("image %q has another target: %w", name, errdefs.ErrNotFound)
	}
	delete(s.images[ns], name)
	return nil
}

func setup(t *testing.T) (*fakeStore, *testutil.Publisher, api.ImagesClient) {
	store, pub := &fakeStore{}, &testutil.Publisher{}
	svc := &service{local: NewLocal(store, pub)}
	return store, pub, api.NewImagesClient(testutil.Serve(t, svc.Register))
}

var target = &types.Descriptor{
	MediaType:   ocispec.MediaTypeImageManifest,
	Digest:      digest.FromString("manifest").String(),
	Size:        123,
	Annotations: map[string]string{"org.opencontainers.image.ref.name": "latest"},
}

func TestCreateGetList(t *testing.T) {
	store, pub, c := setup(t)
	ctx := namespaces.WithNamespace(context.Background(), "ns")

	resp, err := c.Create(ctx, &api.CreateImageRequest{Image: &api.Image{Name: "docker.io/library/x:1", Labels: map[string]string{"a": "b"}, Target: target}})
	if err != nil {
		t.Fatal(err)
	}
	img := resp.Image
	if img.Name != "docker.io/library/x:1" || img.CreatedAt == nil || img.UpdatedAt == nil || img.CreatedAt.AsTime().IsZero() {
		t.Fatalf("created %v", img)
	}
	if img.Target.Digest != target.Digest || img.Target.Size != 123 || img.Target.MediaType != target.MediaType ||
		!reflect.DeepEqual(img.Target.Annotations, target.Annotations) {
		t.Fatalf("target did not round-trip: %v", img.Target)
	}
	stored := store.images["ns"]["docker.io/library/x:1"]
	if stored.Target.Annotations["org.opencontainers.image.ref.name"] != "latest" || stored.Labels["a"] != "b" {
		t.Fatalf("stored %v", stored)
	}
	evs := pub.Take()
	if len(evs) != 1 || evs[0].Topic != "/images/create" || evs[0].Namespace != "ns" {
		t.Fatalf("events %v", evs)
	}
	if ev := evs[0].Event.(*eventstypes.ImageCreate); ev.Name != "docker.io/library/x:1" || ev.Labels["a"] != "b" {
		t.Fatalf("event %v", ev)
	}

	_, err = c.Create(ctx, &api.CreateImageRequest{Image: &api.Image{Name: "docker.io/library/x:1", Target: target}})
	testutil.WantCode(t, err, codes.AlreadyExists)
	_, err = c.Create(ctx, &api.CreateImageRequest{Image: &api.Image{Target: target}})
	testutil.WantCode(t, err, codes.InvalidArgument)
	_, err = c.Create(ctx, &api.CreateImageRequest{})
	testutil.WantCode(t, err, codes.InvalidArgument)
	_, err = c.Create(ctx, &api.CreateImageRequest{Image: &api.Image{Name: "y", Target: &types.Descriptor{Digest: "sha256:nope"}}})
	testutil.WantCode(t, err, codes.InvalidArgument)
	_, err = c.Create(context.Background(), &api.CreateImageRequest{Image: &api.Image{Name: "y", Target: target}})
	testutil.WantCode(t, err, codes.FailedPrecondition)
	if evs := pub.Take(); len(evs) != 0 {
		t.Fatalf("failed creates published %v", evs)
	}

	got, err := c.Get(ctx, &api.GetImageRequest{Name: "docker.io/library/x:1"})
	if err != nil || got.Image.Target.Digest != target.Digest || !got.Image.CreatedAt.AsTime().Equal(img.CreatedAt.AsTime()) {
		t.Fatalf("get %v %v", got, err)
	}
	_, err = c.Get(ctx, &api.GetImageRequest{Name: "absent"})
	testutil.WantCode(t, err, codes.NotFound)

	c.Create(ctx, &api.CreateImageRequest{Image: &api.Image{Name: "z", Target: target}})
	ls, err := c.List(ctx, &api.ListImagesRequest{})
	if err != nil || len(ls.Images) != 2 || ls.Images[1].Name != "z" {
		t.Fatalf("list %v %v", ls, err)
	}
	other, err := c.List(namespaces.WithNamespace(context.Background(), "other"), &api.ListImagesRequest{})
	if err != nil || len(other.Images) != 0 {
		t.Fatalf("other namespace lists %v %v", other, err)
	}
}

func TestUpdate(t *testing.T) {
	_, pub, c := setup(t)
	ctx := namespaces.WithNamespace(context.Background(), "ns")
	c.Create(ctx, &api.CreateImageRequest{Image: &api.Image{Name: "x", Labels: map[string]string{"a": "1", "b": "2"}, Target: target}})
	pub.Take()

	resp, err := c.Update(ctx, &api.UpdateImageRequest{
		Image:      &api.Image{Name: "x", Labels: map[string]string{"a": "9"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels.a"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(resp.Image.Labels, map[string]string{"a": "9", "b": "2"}) || resp.Image.Target.Digest != target.Digest {
		t.Fatalf("after label update %v", resp.Image)
	}
	evs := pub.Take()
	if len(evs) != 1 || evs[0].Topic != "/images/update" {
		t.Fatalf("events %v", evs)
	}
	if ev := evs[0].Event.(*eventstypes.ImageUpdate); ev.Name != "x" || ev.Labels["a"] != "9" {
		t.Fatalf("event %v", ev)
	}

	newTarget := &types.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("index").String(), Size: 7}
	resp, err = c.Update(ctx, &api.UpdateImageRequest{Image: &api.Image{Name: "x", Target: newTarget}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"target"}}})
	if err != nil || resp.Image.Target.Digest != newTarget.Digest || resp.Image.Labels["b"] != "2" {
		t.Fatalf("after target update %v %v", resp, err)
	}

	_, err = c.Update(ctx, &api.UpdateImageRequest{Image: &api.Image{Name: "absent", Target: target}})
	testutil.WantCode(t, err, codes.NotFound)
	_, err = c.Update(ctx, &api.UpdateImageRequest{Image: &api.Image{Name: "x"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}}})
	testutil.WantCode(t, err, codes.InvalidArgument)
	_, err = c.Update(ctx, &api.UpdateImageRequest{})
	testutil.WantCode(t, err, codes.InvalidArgument)
	if evs := pub.Take(); len(evs) != 1 {
		t.Fatalf("events %v", evs)
	}
}

func TestDelete(t *testing.T) {
	store, pub, c := setup(t)
	ctx := namespaces.WithNamespace(context.Background(), "ns")
	for _, n := range []string{"a", "b", "c"} {
		c.Create(ctx, &api.CreateImageRequest{Image: &api.Image{Name: n, Target: target}})
	}
	pub.Take()

	if _, err := c.Delete(ctx, &api.DeleteImageRequest{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, &api.DeleteImageRequest{Name: "b", Sync: true}); err != nil {
		t.Fatal(err)
	}
	wrong := &types.Descriptor{MediaType: target.MediaType, Digest: digest.FromString("other").String(), Size: 1}
	_, err := c.Delete(ctx, &api.DeleteImageRequest{Name: "c", Target: wrong})
	testutil.WantCode(t, err, codes.NotFound)
	if _, err := c.Delete(ctx, &api.DeleteImageRequest{Name: "c", Target: target}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Delete(ctx, &api.DeleteImageRequest{Name: "c"})
	testutil.WantCode(t, err, codes.NotFound)
	_, err = c.Delete(ctx, &api.DeleteImageRequest{Name: "c", Target: &types.Descriptor{Digest: "bad"}})
	testutil.WantCode(t, err, codes.InvalidArgument)

	d := store.deletes
	if len(d) != 5 || d[0].Synchronous || !d[1].Synchronous || d[2].Target == nil || d[2].Target.Digest.String() != wrong.Digest || d[3].Target.Digest.String() != target.Digest {
		t.Fatalf("delete options %+v", d)
	}
	var names []string
	for _, ev := range pub.Take() {
		if ev.Topic != "/images/delete" {
			t.Fatalf("topic %s", ev.Topic)
		}
		names = append(names, ev.Event.(*eventstypes.ImageDelete).Name)
	}
	if !reflect.DeepEqual(names, []string{"a", "b", "c"}) {
		t.Fatalf("delete events for %v", names)
	}
}

// TestListEncoded: over the metadata store, List answers with the
// encodings the store keeps; a client reads them as the images, filtered,
// and sees every change at once.
func TestListEncoded(t *testing.T) {
	db, err := metadata.Open(context.Background(), filepath.Join(t.TempDir(), "meta.db"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc := &service{local: NewLocal(metadata.NewImageStore(db), &testutil.Publisher{})}
	c := api.NewImagesClient(testutil.Serve(t, svc.Register))

	list := func(ns string, filters ...string) []string {
		t.Helper()
		resp, err := c.List(namespaces.WithNamespace(context.Background(), ns), &api.ListImagesRequest{Filters: filters})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, img := range resp.Images {
			if img.Target.GetDigest() != target.Digest || img.CreatedAt == nil {
				t.Fatalf("listed %v", img)
			}
			out = append(out, img.Name+":"+img.Labels["n"])
		}
		return out
	}
	for _, ns := range []string{"a", "b"} {
		ctx := namespaces.WithNamespace(context.Background(), ns)
		for i := range 3 {
			_, err := c.Create(ctx, &api.CreateImageRequest{Image: &api.Image{
				Name: fmt.Sprintf("%s/img-%d", ns, i), Labels: map[string]string{"n": fmt.Sprint(i)}, Target: target}})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// In-process, the answer carries the stored encodings, not Images.
	direct, err := svc.List(namespaces.WithNamespace(context.Background(), "a"), &api.ListImagesRequest{})
	if err != nil || len(direct.Images) != 0 || len(direct.ProtoReflect().GetUnknown()) == 0 {
		t.Fatalf("List did not answer with the store's encodings: %v, %v", direct, err)
	}
	if got := fmt.Sprint(list("a")); got != "[a/img-0:0 a/img-1:1 a/img-2:2]" {
		t.Fatalf("list a = %s", got)
	}
	if got := fmt.Sprint(list("b", "labels.n==1", "name==b/img-2")); got != "[b/img-1:1 b/img-2:2]" {
		t.Fatalf("filtered list b = %s", got)
	}
	ctx := namespaces.WithNamespace(context.Background(), "a")
	if _, err := c.Update(ctx, &api.UpdateImageRequest{Image: &api.Image{Name: "a/img-1", Labels: map[string]string{"n": "x"}, Target: target}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, &api.DeleteImageRequest{Name: "a/img-0"}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(list("a")); got != "[a/img-1:x a/img-2:2]" {
		t.Fatalf("list a after update and delete = %s", got)
	}
	if _, err := c.List(ctx, &api.ListImagesRequest{Filters: []string{"labels.n=="}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("malformed filter: %v", err)
	}
}
