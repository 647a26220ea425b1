package metadata

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/namespaces"
)

func update(db *DB, fn func(namespaces.Store) error) error {
	return db.Update(func(tx *bolt.Tx) error { return fn(NewNamespaceStore(tx)) })
}

func view(db *DB, fn func(namespaces.Store) error) error {
	return db.View(func(tx *bolt.Tx) error { return fn(NewNamespaceStore(tx)) })
}

func assertList(t *testing.T, db *DB, want ...string) {
	t.Helper()
	var got []string
	err := view(db, func(s namespaces.Store) (err error) {
		got, err = s.List(context.Background())
		return err
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
}

func assertLabels(t *testing.T, db *DB, namespace string, want map[string]string) {
	t.Helper()
	var got map[string]string
	err := view(db, func(s namespaces.Store) (err error) {
		got, err = s.Labels(context.Background(), namespace)
		return err
	})
	if err != nil {
		t.Fatalf("Labels(%q): %v", namespace, err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("Labels(%q) = %v, want %v", namespace, got, want)
	}
}

func TestNamespaceLifecycle(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()

	for _, ns := range []string{"zeta", "alpha", "k8s.io"} {
		if err := update(db, func(s namespaces.Store) error {
			return s.Create(ctx, ns, map[string]string{"owner": ns})
		}); err != nil {
			t.Fatalf("Create(%q): %v", ns, err)
		}
	}
	assertList(t, db, "alpha", "k8s.io", "zeta")
	assertLabels(t, db, "alpha", map[string]string{"owner": "alpha"})

	set := func(key, value string) {
		t.Helper()
		if err := update(db, func(s namespaces.Store) error {
			return s.SetLabel(ctx, "alpha", key, value)
		}); err != nil {
			t.Fatalf("SetLabel(%q, %q): %v", key, value, err)
		}
	}
	set("tier", "gold")
	set("owner", "someone")
	assertLabels(t, db, "alpha", map[string]string{"owner": "someone", "tier": "gold"})
	set("owner", "")
	assertLabels(t, db, "alpha", map[string]string{"tier": "gold"})
	set("absent", "") // deleting a missing label is not an error

	if err := update(db, func(s namespaces.Store) error { return s.Delete(ctx, "alpha") }); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	assertList(t, db, "k8s.io", "zeta")
}

func TestCreateDuplicate(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	create := func(labels map[string]string) error {
		return update(db, func(s namespaces.Store) error { return s.Create(ctx, "dup", labels) })
	}
	if err := create(map[string]string{"first": "yes"}); err != nil {
		t.Fatal(err)
	}
	if err := create(map[string]string{"second": "yes"}); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second Create = %v, want AlreadyExists", err)
	}
	assertLabels(t, db, "dup", map[string]string{"first": "yes"})
}

func TestCreateInvalid(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		ns     string
		labels map[string]string
	}{
		{name: "empty", ns: ""},
		{name: "path", ns: "../x"},
		{name: "slash", ns: "a/b"},
		{name: "too long", ns: strings.Repeat("a", 77)},
		{name: "double dot", ns: "a..b"},
		{name: "reserved", ns: "version"},
		{name: "label too large", ns: "ok", labels: map[string]string{"k": strings.Repeat("v", 4096)}},
		{name: "empty label key", ns: "ok", labels: map[string]string{"": "v"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := update(db, func(s namespaces.Store) error { return s.Create(ctx, tt.ns, tt.labels) })
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("Create(%q) = %v, want InvalidArgument", tt.ns, err)
			}
		})
	}
	assertList(t, db)

	// The limit is inclusive: key and value of exactly 4096 bytes fit.
	err := update(db, func(s namespaces.Store) error {
		return s.Create(ctx, "ok", map[string]string{"k": strings.Repeat("v", 4095)})
	})
	if err != nil {
		t.Fatalf("Create with a 4096-byte label: %v", err)
	}
}

func TestMissingNamespace(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	checks := map[string]func(namespaces.Store) error{
		"Labels": func(s namespaces.Store) error {
			_, err := s.Labels(ctx, "nope")
			return err
		},
		"SetLabel": func(s namespaces.Store) error { return s.SetLabel(ctx, "nope", "k", "v") },
		"Delete":   func(s namespaces.Store) error { return s.Delete(ctx, "nope") },
		"Delete version key": func(s namespaces.Store) error {
			return s.Delete(ctx, "version")
		},
	}
	for name, fn := range checks {
		if err := update(db, fn); !errdefs.IsNotFound(err) {
			t.Errorf("%s = %v, want NotFound", name, err)
		}
	}
	assertList(t, db)
}

func TestSetLabelValidates(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	if err := update(db, func(s namespaces.Store) error { return s.Create(ctx, "ns", nil) }); err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{"", "v"}, {"k", strings.Repeat("v", 5000)}} {
		err := update(db, func(s namespaces.Store) error { return s.SetLabel(ctx, "ns", kv[0], kv[1]) })
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("SetLabel(%q, %d bytes) = %v, want InvalidArgument", kv[0], len(kv[1]), err)
		}
	}
	assertLabels(t, db, "ns", map[string]string{})
}

// A namespace bucket made implicitly by another store has no labels bucket.
func TestImplicitNamespace(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := createBucketIfNotExists(tx, namespacePath("implicit")...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	assertList(t, db, "implicit")
	assertLabels(t, db, "implicit", map[string]string{})
	if err := update(db, func(s namespaces.Store) error { return s.SetLabel(ctx, "implicit", "k", "v") }); err != nil {
		t.Fatal(err)
	}
	assertLabels(t, db, "implicit", map[string]string{"k": "v"})
}

func TestDeleteNonEmpty(t *testing.T) {
	tests := []struct {
		name string
		path [][]byte // bucket below the namespace that gets one entry
		want string
	}{
		{"images", [][]byte{bucketKeyObjectImages}, "images"},
		{"blobs", [][]byte{bucketKeyObjectContent, bucketKeyObjectBlob}, "blobs"},
		{"containers", [][]byte{bucketKeyObjectContainers}, "containers"},
		{"snapshots", [][]byte{bucketKeyObjectSnapshots, []byte("overlayfs")}, `snapshots on "overlayfs" snapshotter`},
		{"leases", [][]byte{bucketKeyObjectLeases}, "leases"},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := openTestDB(t)
			if err := update(db, func(s namespaces.Store) error { return s.Create(ctx, "busy", nil) }); err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bolt.Tx) error {
				bkt, err := createBucketIfNotExists(tx, namespacePath("busy", tt.path...)...)
				if err != nil {
					return err
				}
				_, err = bkt.CreateBucket([]byte("object"))
				return err
			}); err != nil {
				t.Fatal(err)
			}

			err := update(db, func(s namespaces.Store) error { return s.Delete(ctx, "busy") })
			if !errdefs.IsFailedPrecondition(err) {
				t.Fatalf("Delete = %v, want FailedPrecondition", err)
			}
			if want := `namespace "busy" must be empty, but it still has ` + tt.want; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
			assertList(t, db, "busy")
		})
	}
}

func TestDeleteListsEveryKind(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	err := db.Update(func(tx *bolt.Tx) error {
		for _, p := range [][][]byte{
			{bucketKeyObjectImages},
			{bucketKeyObjectContent, bucketKeyObjectBlob},
			{bucketKeyObjectSnapshots, []byte("native")},
			{bucketKeyObjectSnapshots, []byte("empty")},
		} {
			bkt, err := createBucketIfNotExists(tx, namespacePath("full", p...)...)
			if err != nil {
				return err
			}
			if string(p[len(p)-1]) == "empty" {
				continue
			}
			if err := bkt.Put([]byte("k"), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = update(db, func(s namespaces.Store) error { return s.Delete(ctx, "full") })
	want := `still has images, blobs, snapshots on "native" snapshotter: failed precondition`
	if err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("Delete = %v, want suffix %q", err, want)
	}
}

// Buckets that exist but hold nothing do not keep a namespace alive.
func TestDeleteWithEmptyObjectBuckets(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	err := db.Update(func(tx *bolt.Tx) error {
		for _, p := range [][][]byte{
			{bucketKeyObjectImages},
			{bucketKeyObjectContainers},
			{bucketKeyObjectContent, bucketKeyObjectBlob},
			{bucketKeyObjectSnapshots, []byte("overlayfs")},
			{bucketKeyObjectLeases},
		} {
			if _, err := createBucketIfNotExists(tx, namespacePath("hollow", p...)...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := update(db, func(s namespaces.Store) error { return s.Delete(ctx, "hollow") }); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	assertList(t, db)
}

func TestDeleteOpts(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	if err := update(db, func(s namespaces.Store) error { return s.Create(ctx, "hooked", nil) }); err != nil {
		t.Fatal(err)
	}

	errHook := errors.New("hook refused")
	err := update(db, func(s namespaces.Store) error {
		return s.Delete(ctx, "hooked", func(ctx context.Context) error { return errHook })
	})
	if !errors.Is(err, errHook) {
		t.Fatalf("Delete = %v, want the hook's error", err)
	}
	assertList(t, db, "hooked")

	// A hook sees the namespace in its context and runs before the
	// emptiness check, so it may clear what is left.
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := createBucketIfNotExists(tx, namespacePath("hooked", bucketKeyObjectLeases, []byte("l1"))...); err != nil {
			return err
		}
		return NewNamespaceStore(tx).Delete(ctx, "hooked", func(ctx context.Context) error {
			if ns, _ := namespaces.Namespace(ctx); ns != "hooked" {
				return fmt.Errorf("hook context namespace = %q", ns)
			}
			return getBucket(tx, namespacePath("hooked")...).DeleteBucket(bucketKeyObjectLeases)
		})
	})
	if err != nil {
		t.Fatalf("Delete with clearing hook: %v", err)
	}
	assertList(t, db)
}

func TestConcurrentCreate(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()

	const n = 32
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		dupWins int
		want    []string
	)
	for i := range n {
		want = append(want, fmt.Sprintf("ns-%02d", i))
	}
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			ns := want[i]
			errs <- update(db, func(s namespaces.Store) error {
				return s.Create(ctx, ns, map[string]string{"i": ns})
			})
		}()
		go func() {
			defer wg.Done()
			err := update(db, func(s namespaces.Store) error { return s.Create(ctx, "shared", nil) })
			switch {
			case err == nil:
				mu.Lock()
				dupWins++
				mu.Unlock()
			case !errdefs.IsAlreadyExists(err):
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if dupWins != 1 {
		t.Errorf("%d concurrent creates of one name succeeded, want 1", dupWins)
	}
	assertList(t, db, append(want, "shared")...)
	assertLabels(t, db, "ns-07", map[string]string{"i": "ns-07"})
}
