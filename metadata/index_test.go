package metadata

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
)

// fromBolt lists ns's images and containers by decoding bolt's records,
// the way reads worked before the index: what the index must agree with.
func fromBolt(t *testing.T, db *DB, ns string) ([]images.Image, []containers.Container) {
	t.Helper()
	var (
		imgs []images.Image
		ctrs []containers.Container
	)
	err := db.View(func(tx *bolt.Tx) error {
		if bkt := getImagesBucket(tx, ns); bkt != nil {
			err := bkt.ForEachBucket(func(k []byte) error {
				img, err := readImage(string(k), bkt.Bucket(k))
				imgs = append(imgs, img)
				return err
			})
			if err != nil {
				return err
			}
		}
		if bkt := getContainersBucket(tx, ns); bkt != nil {
			return bkt.ForEachBucket(func(k []byte) error {
				c, err := readContainer(string(k), bkt.Bucket(k))
				ctrs = append(ctrs, c)
				return err
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return imgs, ctrs
}

// checkIndex fails unless every namespace's lists and gets from the index
// are what bolt holds.
func checkIndex(t *testing.T, db *DB, nss []string) {
	t.Helper()
	for _, ns := range nss {
		ctx := nsContext(ns)
		wantImgs, wantCtrs := fromBolt(t, db, ns)
		gotImgs, err := NewImageStore(db).List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		gotCtrs, err := NewContainerStore(db).List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(gotImgs)+len(wantImgs) > 0 && !reflect.DeepEqual(gotImgs, wantImgs) {
			t.Fatalf("namespace %s: index lists images\n%+v\nbolt holds\n%+v", ns, gotImgs, wantImgs)
		}
		if len(gotCtrs)+len(wantCtrs) > 0 && !containersEqual(gotCtrs, wantCtrs) {
			t.Fatalf("namespace %s: index lists containers\n%+v\nbolt holds\n%+v", ns, gotCtrs, wantCtrs)
		}
		for _, want := range wantImgs {
			got, err := NewImageStore(db).Get(ctx, want.Name)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("namespace %s: Get(%s) = %+v, %v; bolt holds %+v", ns, want.Name, got, err, want)
			}
		}
	}
}

func containersEqual(a, b []containers.Container) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Spec.GetTypeUrl() != y.Spec.GetTypeUrl() || string(x.Spec.GetValue()) != string(y.Spec.GetValue()) {
			return false
		}
		if len(x.Extensions) != len(y.Extensions) {
			return false
		}
		for k, v := range x.Extensions {
			if string(v.GetValue()) != string(y.Extensions[k].GetValue()) {
				return false
			}
		}
		x.Spec, y.Spec, x.Extensions, y.Extensions, x.Runtime.Options, y.Runtime.Options = nil, nil, nil, nil, nil, nil
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

func labelledImage(name string, labels map[string]string) images.Image {
	image := testImage(name, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(name), Size: 10})
	image.Labels = labels
	return image
}

func labelledContainer(id string, labels map[string]string) containers.Container {
	c := testContainer(id)
	c.Labels = labels
	c.Extensions = map[string]*anypb.Any{"ext": {TypeUrl: "x", Value: []byte(id)}}
	return c
}

// TestIndexReflectsEveryCommit: many writers in several namespaces create,
// update and delete images and containers, some of their calls failing in
// shared transactions; every successful write is seen at once by a read
// in its namespace, and at the end the index agrees with bolt, in every
// namespace and again after the database is reopened.
func TestIndexReflectsEveryCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := Open(t.Context(), path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	nss := []string{"a", "b", "c", "d"}
	is, cs := NewImageStore(db), NewContainerStore(db)

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 16 {
		ns := nss[w%len(nss)]
		wg.Go(func() {
			ctx := nsContext(ns)
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range 60 {
				// Each writer has names of its own, so what it reads
				// back is what it wrote.
				name := fmt.Sprintf("img-%d-%d", w, r.IntN(6))
				id := fmt.Sprintf("ctr-%d-%d", w, r.IntN(6))
				labels := map[string]string{"w": fmt.Sprint(w), "i": fmt.Sprint(i)}
				var err error
				switch r.IntN(6) {
				case 0:
					_, err = is.Create(ctx, labelledImage(name, labels))
					if err == nil {
						err = seen(is.Get(ctx, name))
					}
				case 1:
					_, err = is.Update(ctx, labelledImage(name, labels), "labels.i")
					if err == nil {
						var got images.Image
						if got, err = is.Get(ctx, name); err == nil && got.Labels["i"] != labels["i"] {
							err = fmt.Errorf("%s: update of labels.i to %s not seen: %v", name, labels["i"], got.Labels)
						}
					}
				case 2:
					err = is.Delete(ctx, name)
					if err == nil {
						if _, gerr := is.Get(ctx, name); !errdefs.IsNotFound(gerr) {
							err = fmt.Errorf("%s: deleted but Get gives %v", name, gerr)
						}
					}
				case 3:
					_, err = cs.Create(ctx, labelledContainer(id, labels))
					if err == nil {
						_, err = cs.Get(ctx, id)
					}
				case 4:
					_, err = cs.Update(ctx, labelledContainer(id, labels), "labels")
				case 5:
					err = cs.Delete(ctx, id)
				}
				// A writer's random calls meet its own names being there
				// or not; anything else is wrong.
				if err != nil && !errdefs.IsNotFound(err) && !errdefs.IsAlreadyExists(err) {
					errs <- fmt.Errorf("writer %d in %s: %w", w, ns, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkIndex(t, db, nss)

	// A caller changing what it was given does not change the index.
	ctx := nsContext("a")
	if _, err := is.Create(ctx, labelledImage("mine", map[string]string{"k": "v"})); err != nil {
		t.Fatal(err)
	}
	got, err := is.Get(ctx, "mine")
	if err != nil {
		t.Fatal(err)
	}
	got.Labels["k"] = "changed"
	list, _ := is.List(ctx)
	for _, img := range list {
		img.Labels["k"] = "changed too"
	}
	checkIndex(t, db, nss)

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	reopened, err := Open(context.Background(), path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	checkIndex(t, reopened, nss)
	again, err := NewImageStore(reopened).Get(ctx, "mine")
	if err != nil || again.Labels["k"] != "v" {
		t.Fatalf("after reopening, image mine is %+v, %v", again, err)
	}
}

func seen(_ images.Image, err error) error {
	if err != nil {
		return fmt.Errorf("created but not seen: %w", err)
	}
	return nil
}

// TestIndexFiltersAndEncoded: filters are evaluated on the index, and the
// encoded list is made once per version of an image.
func TestIndexFiltersAndEncoded(t *testing.T) {
	db := openBareDB(t)
	is := NewImageStore(db).(*imageStore)
	ctx := nsContext("ns")
	for i := range 5 {
		if _, err := is.Create(ctx, labelledImage(fmt.Sprint("img-", i), map[string]string{"even": fmt.Sprint(i%2 == 0)})); err != nil {
			t.Fatal(err)
		}
	}
	list, err := is.List(ctx, "labels.even==true")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, img := range list {
		names = append(names, img.Name)
	}
	if fmt.Sprint(names) != "[img-0 img-2 img-4]" {
		t.Fatalf("filtered list %v", names)
	}
	if _, err := is.List(ctx, "labels.even=="); err == nil {
		t.Fatal("a malformed filter was accepted")
	}

	calls := 0
	enc := func(img *images.Image) []byte {
		calls++
		return []byte(img.Name + "@" + img.Labels["v"])
	}
	for range 3 {
		out, err := is.ListEncoded(ctx, enc, "name==img-1")
		if err != nil || len(out) != 1 || string(out[0]) != "img-1@" {
			t.Fatalf("ListEncoded = %q, %v", out, err)
		}
	}
	if calls != 1 {
		t.Fatalf("encoded %d times for an unchanged image, want once", calls)
	}
	if _, err := is.Update(ctx, labelledImage("img-1", map[string]string{"v": "2"}), "labels.v"); err != nil {
		t.Fatal(err)
	}
	out, err := is.ListEncoded(ctx, enc, "name==img-1")
	if err != nil || len(out) != 1 || string(out[0]) != "img-1@2" {
		t.Fatalf("after update, ListEncoded = %q, %v", out, err)
	}

	// Without filters: the namespace's whole answer, in name order, kept
	// until something in the namespace changes.
	all := func() string {
		t.Helper()
		out, err := is.ListEncoded(ctx, enc)
		if err != nil || len(out) != 1 {
			t.Fatalf("unfiltered ListEncoded = %q, %v", out, err)
		}
		return string(out[0])
	}
	want := "img-0@img-1@2img-2@img-3@img-4@"
	calls = 0
	if got := all(); got != want {
		t.Fatalf("unfiltered = %q, want %q", got, want)
	}
	if got := all(); got != want || calls != 4 {
		t.Fatalf("unfiltered again = %q after %d encodings, want %q after 4 (img-1's was kept)", got, calls, want)
	}
	if err := is.Delete(ctx, "img-3"); err != nil {
		t.Fatal(err)
	}
	if _, err := is.Create(nsContext("other"), labelledImage("img-9", nil)); err != nil {
		t.Fatal(err)
	}
	if got := all(); got != "img-0@img-1@2img-2@img-4@" {
		t.Fatalf("after a delete, unfiltered = %q", got)
	}
}
