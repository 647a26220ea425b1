package metadata

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/snapshots/naive"
	"github.com/llitfkitfk/containerd/snapshots/overlay"
	"github.com/llitfkitfk/containerd/snapshots/testsuite"
)

// newBacking makes a backing snapshotter of kind ("naive" or "overlayfs")
// under root, skipping the test where that cannot work here.
func newBacking(t testing.TB, kind, root string) snapshots.Snapshotter {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("snapshots are mounted to be checked, which needs root")
	}
	var (
		sn  snapshots.Snapshotter
		err error
	)
	switch kind {
	case "naive":
		sn, err = naive.NewSnapshotter(root)
	case "overlayfs":
		if err := overlay.Supported(root); err != nil {
			t.Skipf("overlay unavailable: %v", err)
		}
		sn, err = overlay.NewSnapshotter(root)
	default:
		t.Fatalf("unknown snapshotter %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

var backingKinds = []string{"naive", "overlayfs"}

// forEachBacking runs fn as a subtest over a fresh DB whose one
// snapshotter, named sn, is of each kind in turn.
func forEachBacking(t *testing.T, fn func(t *testing.T, db *DB, sn string, backing snapshots.Snapshotter)) {
	for _, kind := range backingKinds {
		t.Run(kind, func(t *testing.T) {
			db, backing := openSnapshotDB(t, kind)
			fn(t, db, kind, backing)
		})
	}
}

// openSnapshotDB opens a DB over a local content store and one backing
// snapshotter of kind, named kind.
func openSnapshotDB(t *testing.T, kind string) (*DB, snapshots.Snapshotter) {
	t.Helper()
	dir := t.TempDir()
	backing := newBacking(t, kind, filepath.Join(dir, kind))
	t.Cleanup(func() { backing.Close() })
	cs, err := local.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(context.Background(), filepath.Join(dir, "meta.db"), cs, map[string]snapshots.Snapshotter{kind: backing})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, backing
}

// nsSnapshotter puts every call of the namespaced view in one namespace,
// so that the snapshotter test suite, which knows none, can run it.
type nsSnapshotter struct {
	snapshots.Snapshotter
	ns string
}

func (s nsSnapshotter) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, s.ns)
}

func (s nsSnapshotter) Stat(ctx context.Context, key string) (snapshots.Info, error) {
	return s.Snapshotter.Stat(s.ctx(ctx), key)
}

func (s nsSnapshotter) Update(ctx context.Context, info snapshots.Info, fieldpaths ...string) (snapshots.Info, error) {
	return s.Snapshotter.Update(s.ctx(ctx), info, fieldpaths...)
}

func (s nsSnapshotter) Usage(ctx context.Context, key string) (snapshots.Usage, error) {
	return s.Snapshotter.Usage(s.ctx(ctx), key)
}

func (s nsSnapshotter) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	return s.Snapshotter.Mounts(s.ctx(ctx), key)
}

func (s nsSnapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return s.Snapshotter.Prepare(s.ctx(ctx), key, parent, opts...)
}

func (s nsSnapshotter) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return s.Snapshotter.View(s.ctx(ctx), key, parent, opts...)
}

func (s nsSnapshotter) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	return s.Snapshotter.Commit(s.ctx(ctx), name, key, opts...)
}

func (s nsSnapshotter) Remove(ctx context.Context, key string) error {
	return s.Snapshotter.Remove(s.ctx(ctx), key)
}

func (s nsSnapshotter) Walk(ctx context.Context, fn snapshots.WalkFunc, fs ...string) error {
	return s.Snapshotter.Walk(s.ctx(ctx), fn, fs...)
}

// The namespaced view must behave as any snapshotter does. Closing it here
// closes the DB and the backing snapshotter, which the suite checks for.
func TestSnapshotterSuite(t *testing.T) {
	for _, kind := range backingKinds {
		t.Run(kind, func(t *testing.T) {
			testsuite.SnapshotterSuite(t, kind, func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
				backing := newBacking(t, kind, filepath.Join(root, "backing"))
				db, err := Open(ctx, filepath.Join(root, "meta.db"), nil, map[string]snapshots.Snapshotter{kind: backing})
				if err != nil {
					backing.Close()
					return nil, nil, err
				}
				var once sync.Once
				var cerr error
				closeFn := func() error {
					once.Do(func() { cerr = errors.Join(db.Close(), backing.Close()) })
					return cerr
				}
				return closingSnapshotter{nsSnapshotter{db.Snapshotter(kind), "suite"}, closeFn}, closeFn, nil
			})
		})
	}
}

type closingSnapshotter struct {
	nsSnapshotter
	close func() error
}

func (s closingSnapshotter) Close() error { return s.close() }

// writeFiles mounts the snapshot's mounts and writes files into it.
func writeFiles(t *testing.T, mounts []mount.Mount, files map[string]string) {
	t.Helper()
	err := mount.WithTempMount(context.Background(), mounts, func(root string) error {
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// readFiles mounts the mounts and returns the regular files at the top.
func readFiles(t *testing.T, mounts []mount.Mount) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := mount.WithTempMount(context.Background(), mounts, func(root string) error {
		entries, err := os.ReadDir(root)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(root, e.Name()))
			if err != nil {
				return err
			}
			files[e.Name()] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// commitLayer prepares key on parent, writes files and commits it as name.
func commitLayer(t *testing.T, ctx context.Context, sn snapshots.Snapshotter, name, parent string, files map[string]string, opts ...snapshots.Opt) {
	t.Helper()
	key := name + "-active"
	mounts, err := sn.Prepare(ctx, key, parent)
	if err != nil {
		t.Fatalf("prepare %q on %q: %v", key, parent, err)
	}
	writeFiles(t, mounts, files)
	if err := sn.Commit(ctx, name, key, opts...); err != nil {
		t.Fatalf("commit %q as %q: %v", key, name, err)
	}
}

func walkNames(t *testing.T, ctx context.Context, sn snapshots.Snapshotter, fs ...string) []string {
	t.Helper()
	var names []string
	err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		names = append(names, info.Name)
		return nil
	}, fs...)
	if err != nil {
		t.Fatalf("walk %q: %v", fs, err)
	}
	return names
}

// backingKeyOf returns the backing key the namespace's record of key names.
func backingKeyOf(t *testing.T, db *DB, ns, sn, key string) string {
	t.Helper()
	var bkey string
	db.View(func(tx *bolt.Tx) error {
		if bkt := getSnapshotBucket(tx, ns, sn, key); bkt != nil {
			bkey = string(bkt.Get(bucketKeyName))
		}
		return nil
	})
	if bkey == "" {
		t.Fatalf("no record of %s snapshot %q in %q", sn, key, ns)
	}
	return bkey
}

func backingKeys(t *testing.T, backing snapshots.Snapshotter) []string {
	t.Helper()
	keys := walkNames(t, context.Background(), backing)
	slices.Sort(keys)
	return keys
}

func TestSnapshotNamespaces(t *testing.T) {
	forEachBacking(t, func(t *testing.T, db *DB, name string, backing snapshots.Snapshotter) {
		sn := db.Snapshotter(name)
		a, b := nsContext("a"), nsContext("b")

		commitLayer(t, a, sn, "base", "", map[string]string{"f": "a"})
		if _, err := sn.Stat(b, "base"); !errdefs.IsNotFound(err) {
			t.Errorf("b sees a's snapshot: %v", err)
		}
		_, err := sn.Prepare(b, "x", "base")
		assertErr(t, "prepare in b on a's snapshot", err, errdefs.IsNotFound, "NotFound")

		// The same key in b is b's own.
		commitLayer(t, b, sn, "base", "", map[string]string{"f": "b"})
		for ctx, want := range map[context.Context]string{a: "a", b: "b"} {
			m, err := sn.View(ctx, "v", "base")
			if err != nil {
				t.Fatal(err)
			}
			if got := readFiles(t, m)["f"]; got != want {
				t.Errorf("view of base reads %q, want %q", got, want)
			}
		}
		if err := sn.Remove(a, "v"); err != nil {
			t.Fatal(err)
		}
		if got := walkNames(t, a, sn); !slices.Equal(got, []string{"base"}) {
			t.Errorf("a lists %q", got)
		}
		if got := walkNames(t, b, sn); !slices.Equal(got, []string{"base", "v"}) {
			t.Errorf("b lists %q", got)
		}
		if got := walkNames(t, nsContext("c"), sn); len(got) != 0 {
			t.Errorf("c lists %q", got)
		}
		if _, err := sn.Stat(context.Background(), "base"); !errdefs.IsFailedPrecondition(err) && !errdefs.IsInvalidArgument(err) {
			t.Errorf("stat without a namespace: %v", err)
		}
		// Four snapshots live in the backing snapshotter, none under the
		// names the namespaces use.
		if keys := backingKeys(t, backing); len(keys) != 4 || slices.Contains(keys, "base") {
			t.Errorf("backing keys %q", keys)
		}
	})
}

func TestSnapshotChain(t *testing.T) {
	forEachBacking(t, func(t *testing.T, db *DB, name string, _ snapshots.Snapshotter) {
		sn := db.Snapshotter(name)
		ctx := nsContext("default")

		commitLayer(t, ctx, sn, "l1", "", map[string]string{"a": "1", "b": "1"})
		commitLayer(t, ctx, sn, "l2", "l1", map[string]string{"b": "2", "c": "2"})
		commitLayer(t, ctx, sn, "l3", "l2", map[string]string{"d": "3"})
		m, err := sn.Prepare(ctx, "top", "l3")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"a": "1", "b": "2", "c": "2", "d": "3"}
		if got := readFiles(t, m); !maps.Equal(got, want) {
			t.Errorf("top reads %v, want %v", got, want)
		}
		again, err := sn.Mounts(ctx, "top")
		if err != nil || !slices.EqualFunc(again, m, func(x, y mount.Mount) bool {
			return x.Type == y.Type && x.Source == y.Source && slices.Equal(x.Options, y.Options)
		}) {
			t.Errorf("Mounts(top) = %v, %v; Prepare returned %v", again, err, m)
		}
		if _, err := sn.View(ctx, "view", "l2"); err != nil {
			t.Fatal(err)
		}

		for key, want := range map[string]struct {
			kind   snapshots.Kind
			parent string
		}{
			"l1":   {snapshots.KindCommitted, ""},
			"l2":   {snapshots.KindCommitted, "l1"},
			"l3":   {snapshots.KindCommitted, "l2"},
			"top":  {snapshots.KindActive, "l3"},
			"view": {snapshots.KindView, "l2"},
		} {
			info, err := sn.Stat(ctx, key)
			if err != nil {
				t.Fatalf("stat %q: %v", key, err)
			}
			if info.Name != key || info.Kind != want.kind || info.Parent != want.parent {
				t.Errorf("stat %q = %+v, want kind %v parent %q", key, info, want.kind, want.parent)
			}
			if info.Created.IsZero() || info.Updated.Before(info.Created) {
				t.Errorf("stat %q: times %v, %v", key, info.Created, info.Updated)
			}
		}
		if _, err := sn.Stat(ctx, "l1-active"); !errdefs.IsNotFound(err) {
			t.Errorf("committed key still there: %v", err)
		}
		u, err := sn.Usage(ctx, "l2")
		if err != nil || u.Size < 2 || u.Inodes < 2 {
			t.Errorf("usage of l2 = %+v, %v", u, err)
		}

		for _, tc := range []struct {
			filter string
			want   []string
		}{
			{"", []string{"l1", "l2", "l3", "top", "view"}},
			{"kind==committed", []string{"l1", "l2", "l3"}},
			{"kind==active", []string{"top"}},
			{"kind==view", []string{"view"}},
			{"parent==l2", []string{"l3", "view"}},
			{"name==top", []string{"top"}},
			{`name~="^l"`, []string{"l1", "l2", "l3"}},
		} {
			var fs []string
			if tc.filter != "" {
				fs = []string{tc.filter}
			}
			if got := walkNames(t, ctx, sn, fs...); !slices.Equal(got, tc.want) {
				t.Errorf("walk %q = %q, want %q", tc.filter, got, tc.want)
			}
		}
		err = sn.Walk(ctx, func(context.Context, snapshots.Info) error { return nil }, "kind==")
		assertErr(t, "walk with a bad filter", err, errdefs.IsInvalidArgument, "InvalidArgument")
	})
}

func TestSnapshotErrors(t *testing.T) {
	forEachBacking(t, func(t *testing.T, db *DB, name string, backing snapshots.Snapshotter) {
		sn := db.Snapshotter(name)
		ctx := nsContext("default")

		commitLayer(t, ctx, sn, "base", "", map[string]string{"f": "1"})
		commitLayer(t, ctx, sn, "mid", "base", map[string]string{"g": "2"})
		if _, err := sn.Prepare(ctx, "active", "mid"); err != nil {
			t.Fatal(err)
		}
		before := backingKeys(t, backing)

		_, err := sn.Prepare(ctx, "active", "")
		assertErr(t, "prepare an existing key", err, errdefs.IsAlreadyExists, "AlreadyExists")
		_, err = sn.Prepare(ctx, "x", "missing")
		assertErr(t, "prepare on a missing parent", err, errdefs.IsNotFound, "NotFound")
		_, err = sn.Prepare(ctx, "x", "active")
		assertErr(t, "prepare on an active parent", err, errdefs.IsFailedPrecondition, "FailedPrecondition")
		_, err = sn.Prepare(ctx, "x", "", snapshots.WithLabels(map[string]string{"": "v"}))
		assertErr(t, "prepare with an empty label key", err, errdefs.IsInvalidArgument, "InvalidArgument")
		if _, err := sn.Prepare(ctx, "x", "", snapshots.WithLabels(map[string]string{"v": string(make([]byte, maxLabelSize))})); !errdefs.IsInvalidArgument(err) {
			t.Errorf("prepare with an oversized label: %v", err)
		}
		if after := backingKeys(t, backing); !slices.Equal(after, before) {
			t.Errorf("failed prepares left backing snapshots: %q, before %q", after, before)
		}

		if _, err := sn.Prepare(ctx, "other", ""); err != nil {
			t.Fatal(err)
		}
		err = sn.Commit(ctx, "base", "other")
		assertErr(t, "commit onto an existing name", err, errdefs.IsAlreadyExists, "AlreadyExists")
		err = sn.Commit(ctx, "n", "missing")
		assertErr(t, "commit a missing key", err, errdefs.IsNotFound, "NotFound")
		err = sn.Commit(ctx, "n", "base")
		assertErr(t, "commit a committed snapshot", err, errdefs.IsFailedPrecondition, "FailedPrecondition")
		if info, err := sn.Stat(ctx, "other"); err != nil || info.Kind != snapshots.KindActive {
			t.Errorf("failed commits changed other: %+v, %v", info, err)
		}
		if _, err := sn.Stat(ctx, "n"); !errdefs.IsNotFound(err) {
			t.Errorf("failed commit left a record: %v", err)
		}

		for _, key := range []string{"base", "mid"} {
			err := sn.Remove(ctx, key)
			assertErr(t, "remove "+key+" with children", err, errdefs.IsFailedPrecondition, "FailedPrecondition")
		}
		err = sn.Remove(ctx, "missing")
		assertErr(t, "remove a missing key", err, errdefs.IsNotFound, "NotFound")
		for _, key := range []string{"active", "mid", "base"} {
			if err := sn.Remove(ctx, key); err != nil {
				t.Fatalf("remove %q: %v", key, err)
			}
		}
		// Removal leaves the backing snapshots to collection.
		if keys := backingKeys(t, backing); len(keys) != 4 {
			t.Errorf("backing keys after remove: %q", keys)
		}
		collect(t, db)
		if keys := backingKeys(t, backing); len(keys) != 0 {
			t.Errorf("backing keys after collection: %q", keys)
		}
		if db.Snapshotter("nope") != nil {
			t.Error("Snapshotter of an unknown name is not nil")
		}
	})
}

func TestSnapshotLabels(t *testing.T) {
	forEachBacking(t, func(t *testing.T, db *DB, name string, backing snapshots.Snapshotter) {
		sn := db.Snapshotter(name)
		ctx := nsContext("default")
		const inherited = snapshots.InheritedLabelPrefix + "x"

		if _, err := sn.Prepare(ctx, "k", "", snapshots.WithLabels(map[string]string{"a": "1", "b": "2", inherited: "i"})); err != nil {
			t.Fatal(err)
		}
		info, err := sn.Stat(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		labelsEqual(t, "prepared", info.Labels, map[string]string{"a": "1", "b": "2", inherited: "i"})
		bkey := backingKeyOf(t, db, "default", name, "k")
		binfo, err := backing.Stat(context.Background(), bkey)
		if err != nil {
			t.Fatal(err)
		}
		labelsEqual(t, "backing", binfo.Labels, map[string]string{inherited: "i"})

		// One label set, one removed, others untouched.
		info, err = sn.Update(ctx, snapshots.Info{Name: "k", Labels: map[string]string{"c": "3"}}, "labels.c", "labels.a")
		if err != nil {
			t.Fatal(err)
		}
		labelsEqual(t, "updated", info.Labels, map[string]string{"b": "2", "c": "3", inherited: "i"})
		if info.Kind != snapshots.KindActive || !info.Updated.After(info.Created) {
			t.Errorf("updated info %+v", info)
		}
		if got, _ := sn.Stat(ctx, "k"); !maps.Equal(got.Labels, info.Labels) || !got.Updated.Equal(info.Updated) {
			t.Errorf("stat after update = %+v, update returned %+v", got, info)
		}

		// Inherited labels follow into the backing snapshotter.
		info, err = sn.Update(ctx, snapshots.Info{Name: "k", Labels: map[string]string{inherited: "j"}}, "labels."+inherited)
		if err != nil {
			t.Fatal(err)
		}
		labelsEqual(t, "inherited updated", info.Labels, map[string]string{"b": "2", "c": "3", inherited: "j"})
		binfo, _ = backing.Stat(context.Background(), bkey)
		labelsEqual(t, "backing after update", binfo.Labels, map[string]string{inherited: "j"})

		// No field paths replace every label.
		info, err = sn.Update(ctx, snapshots.Info{Name: "k", Labels: map[string]string{"z": "26"}})
		if err != nil {
			t.Fatal(err)
		}
		labelsEqual(t, "replaced", info.Labels, map[string]string{"z": "26"})
		binfo, _ = backing.Stat(context.Background(), bkey)
		labelsEqual(t, "backing after replace", binfo.Labels, nil)

		_, err = sn.Update(ctx, snapshots.Info{Name: "k", Parent: "x"}, "parent")
		assertErr(t, "update of parent", err, errdefs.IsInvalidArgument, "InvalidArgument")
		_, err = sn.Update(ctx, snapshots.Info{Name: "missing"}, "labels")
		assertErr(t, "update of a missing snapshot", err, errdefs.IsNotFound, "NotFound")
		_, err = sn.Update(ctx, snapshots.Info{}, "labels")
		assertErr(t, "update without a name", err, errdefs.IsInvalidArgument, "InvalidArgument")

		// Labels are per namespace, and filter walks.
		if _, err := sn.Prepare(nsContext("other"), "k", "", snapshots.WithLabels(map[string]string{"z": "other"})); err != nil {
			t.Fatal(err)
		}
		if got := walkNames(t, ctx, sn, "labels.z==26"); !slices.Equal(got, []string{"k"}) {
			t.Errorf("walk by label = %q", got)
		}
		if got := walkNames(t, ctx, sn, "labels.z==other"); len(got) != 0 {
			t.Errorf("walk by other namespace's label = %q", got)
		}

		// Commit takes its labels from the options, not from the key.
		if err := sn.Commit(ctx, "c", "k", snapshots.WithLabels(map[string]string{"n": "1"})); err != nil {
			t.Fatal(err)
		}
		info, _ = sn.Stat(ctx, "c")
		labelsEqual(t, "committed", info.Labels, map[string]string{"n": "1"})
	})
}

func TestSnapshotLeases(t *testing.T) {
	forEachBacking(t, func(t *testing.T, db *DB, name string, backing snapshots.Snapshotter) {
		sn := db.Snapshotter(name)
		lm := NewLeaseManager(db)
		ctx := nsContext("default")
		l := createLease(t, ctx, lm, leases.WithID("l"))
		lctx := leases.WithLease(ctx, l.ID)
		resources := func() []string {
			t.Helper()
			rs, err := lm.ListResources(ctx, l)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, r := range rs {
				out = append(out, r.Type+":"+r.ID)
			}
			return out
		}
		typ := "snapshots/" + name

		if _, err := sn.Prepare(lctx, "active", ""); err != nil {
			t.Fatal(err)
		}
		if got := resources(); !slices.Equal(got, []string{typ + ":active"}) {
			t.Errorf("after prepare, lease holds %q", got)
		}
		if err := sn.Commit(lctx, "done", "active"); err != nil {
			t.Fatal(err)
		}
		if _, err := sn.View(lctx, "view", "done"); err != nil {
			t.Fatal(err)
		}
		if got := resources(); !slices.Equal(got, []string{typ + ":done", typ + ":view"}) {
			t.Errorf("after commit and view, lease holds %q", got)
		}
		if err := sn.Remove(lctx, "view"); err != nil {
			t.Fatal(err)
		}
		if got := resources(); !slices.Equal(got, []string{typ + ":done"}) {
			t.Errorf("after remove, lease holds %q", got)
		}

		// The lease keeps what it holds from collection; then it goes.
		collect(t, db)
		if _, err := sn.Stat(ctx, "done"); err != nil {
			t.Errorf("leased snapshot collected: %v", err)
		}
		if err := lm.Delete(ctx, l, leases.SynchronousDelete); err != nil {
			t.Fatal(err)
		}
		if _, err := sn.Stat(ctx, "done"); !errdefs.IsNotFound(err) {
			t.Errorf("snapshot of a deleted lease: %v", err)
		}
		if keys := backingKeys(t, backing); len(keys) != 0 {
			t.Errorf("backing keys after the lease went: %q", keys)
		}

		// A lease that does not exist fails creation, leaving nothing.
		_, err := sn.Prepare(leases.WithLease(ctx, "missing"), "x", "")
		assertErr(t, "prepare under a missing lease", err, errdefs.IsNotFound, "NotFound")
		if keys := backingKeys(t, backing); len(keys) != 0 {
			t.Errorf("backing keys after a failed prepare: %q", keys)
		}
	})
}

func TestSnapshotGarbageCollect(t *testing.T) {
	forEachBacking(t, func(t *testing.T, db *DB, name string, backing snapshots.Snapshotter) {
		sn := db.Snapshotter(name)
		cs := db.ContentStore()
		lm := NewLeaseManager(db)
		ctx, other := nsContext("default"), nsContext("other")
		root := map[string]string{"containerd.io/gc.root": "yes"}

		// Image layers: a chain whose top an image's config names.
		commitLayer(t, ctx, sn, "layer1", "", map[string]string{"a": "1"})
		commitLayer(t, ctx, sn, "layer2", "layer1", map[string]string{"b": "2"})
		commitLayer(t, ctx, sn, "layer3", "layer2", map[string]string{"c": "3"})
		writeBlob(t, ctx, cs, []byte("config"), map[string]string{
			"containerd.io/gc.root":                 "yes",
			"containerd.io/gc.ref.snapshot." + name: "layer3",
		})
		// A container's writable layer, rooted, keeps its parent.
		commitLayer(t, ctx, sn, "base", "", map[string]string{"f": "1"})
		if _, err := sn.Prepare(ctx, "rw", "base", snapshots.WithLabels(root)); err != nil {
			t.Fatal(err)
		}
		// A snapshot whose label refers to another one.
		commitLayer(t, ctx, sn, "referred", "", nil)
		commitLayer(t, ctx, sn, "referrer", "", nil, snapshots.WithLabels(map[string]string{
			"containerd.io/gc.root":                        "yes",
			"containerd.io/gc.ref.snapshot." + name + "/x": "referred",
		}))
		// Leased: under a live lease, under a flat lease (with parent),
		// under an expired one.
		live := createLease(t, ctx, lm, leases.WithID("live"))
		commitLayer(t, leases.WithLease(ctx, live.ID), sn, "leased", "", nil)
		flat := createLease(t, ctx, lm, leases.WithID("flat"), leases.WithLabels(map[string]string{"containerd.io/gc.flat": "1"}))
		commitLayer(t, ctx, sn, "flat-parent", "", nil)
		commitLayer(t, leases.WithLease(ctx, flat.ID), sn, "flat-child", "flat-parent", nil, snapshots.WithLabels(map[string]string{
			"containerd.io/gc.ref.snapshot." + name: "flat-ref",
		}))
		commitLayer(t, ctx, sn, "flat-ref", "", nil)
		old := createLease(t, ctx, lm, leases.WithID("old"), leases.WithExpiration(-time.Minute))
		commitLayer(t, leases.WithLease(ctx, old.ID), sn, "expired", "", nil)
		// Garbage: a lone snapshot, a chain, an unrooted child of a kept
		// snapshot, and another namespace's snapshot under a kept key.
		commitLayer(t, ctx, sn, "lone", "", nil)
		commitLayer(t, ctx, sn, "g1", "", nil)
		commitLayer(t, ctx, sn, "g2", "g1", nil)
		if _, err := sn.Prepare(ctx, "g3", "g2"); err != nil {
			t.Fatal(err)
		}
		if _, err := sn.View(ctx, "stray-view", "layer2"); err != nil {
			t.Fatal(err)
		}
		commitLayer(t, other, sn, "layer1", "", nil)
		// And a backing snapshot no record names, as a crash between
		// making it and recording it leaves.
		if _, err := backing.Prepare(context.Background(), "crash-leftover", ""); err != nil {
			t.Fatal(err)
		}

		keep := []string{"layer1", "layer2", "layer3", "base", "rw", "referred", "referrer", "leased", "flat-parent", "flat-child"}
		gone := []string{"flat-ref", "expired", "lone", "g1", "g2", "g3", "stray-view"}
		var bkeys []string
		for _, k := range keep {
			bkeys = append(bkeys, backingKeyOf(t, db, "default", name, k))
		}
		slices.Sort(bkeys)

		stats := collect(t, db)
		if _, ok := stats.SnapshotD[name]; !ok {
			t.Errorf("stats %+v do not time the %s cleanup", stats, name)
		}
		for _, k := range keep {
			if _, err := sn.Stat(ctx, k); err != nil {
				t.Errorf("%s collected: %v", k, err)
			}
		}
		for _, k := range gone {
			if _, err := sn.Stat(ctx, k); !errdefs.IsNotFound(err) {
				t.Errorf("%s kept: %v", k, err)
			}
		}
		if _, err := sn.Stat(other, "layer1"); !errdefs.IsNotFound(err) {
			t.Errorf("other namespace's layer1 kept: %v", err)
		}
		if got := backingKeys(t, backing); !slices.Equal(got, bkeys) {
			t.Errorf("backing keys after collection:\n%q\nwant\n%q", got, bkeys)
		}
		if got := walkNames(t, ctx, sn, "parent==layer2"); !slices.Equal(got, []string{"layer3"}) {
			t.Errorf("children of layer2 = %q", got)
		}
		// Kept snapshots still assemble, and the swept view's link is
		// gone from its parent.
		m, err := sn.View(ctx, "check", "layer3")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := readFiles(t, m), map[string]string{"a": "1", "b": "2", "c": "3"}; !maps.Equal(got, want) {
			t.Errorf("layer3 reads %v, want %v", got, want)
		}
		// Removing layer2 works only if the swept view's link went too.
		for _, k := range []string{"check", "layer3", "layer2"} {
			if err := sn.Remove(ctx, k); err != nil {
				t.Errorf("remove %s: %v", k, err)
			}
		}
		// layer1 has lost the config's reference through its children.
		collect(t, db)
		if _, err := sn.Stat(ctx, "layer1"); !errdefs.IsNotFound(err) {
			t.Errorf("layer1 kept: %v", err)
		}
		if _, err := sn.Stat(ctx, "base"); err != nil {
			t.Errorf("base collected: %v", err)
		}
	})
}

// Collections racing with leased prepares and commits never take what a
// lease holds, nor leave records without backing snapshots.
func TestSnapshotCollectConcurrently(t *testing.T) {
	forEachBacking(t, func(t *testing.T, db *DB, name string, backing snapshots.Snapshotter) {
		sn := db.Snapshotter(name)
		lm := NewLeaseManager(db)
		ctx := nsContext("default")
		l := createLease(t, ctx, lm, leases.WithID("l"))
		lctx := leases.WithLease(ctx, l.ID)

		stop := make(chan struct{})
		collector := make(chan struct{})
		go func() {
			defer close(collector)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := db.GarbageCollect(context.Background()); err != nil {
					t.Errorf("collect: %v", err)
					return
				}
			}
		}()
		const workers, layers = 3, 5
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				parent := ""
				for i := range layers {
					name := fmt.Sprintf("w%d-l%d", w, i)
					if _, err := sn.Prepare(lctx, name+"-active", parent); err != nil {
						t.Errorf("prepare %s: %v", name, err)
						return
					}
					if err := sn.Commit(lctx, name, name+"-active"); err != nil {
						t.Errorf("commit %s: %v", name, err)
						return
					}
					// Unleased garbage for the collector to find.
					if _, err := sn.View(ctx, name+"-garbage", name); err != nil {
						t.Errorf("view %s: %v", name, err)
						return
					}
					parent = name
				}
			}()
		}
		wg.Wait()
		close(stop)
		<-collector

		if t.Failed() {
			return
		}
		collect(t, db)
		got := walkNames(t, ctx, sn)
		if len(got) != workers*layers {
			t.Errorf("after collection %d snapshots remain: %q", len(got), got)
		}
		if keys := backingKeys(t, backing); len(keys) != workers*layers {
			t.Errorf("after collection %d backing snapshots remain: %q", len(keys), keys)
		}
	})
}

// A create writes the metadata once, after the backing snapshot is made,
// and its backing keys stay unique across a new DB over the same files,
// even past a backing snapshot a crash left unrecorded with the number the
// next create would draw.
func TestSnapshotBackingKeys(t *testing.T) {
	forEachBacking(t, func(t *testing.T, db *DB, name string, backing snapshots.Snapshotter) {
		ctx := nsContext("ns")
		sn := db.Snapshotter(name)
		txid := func() (id int) {
			db.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
			return id
		}
		before := txid()
		if _, err := sn.Prepare(ctx, "a", ""); err != nil {
			t.Fatal(err)
		}
		if n := txid() - before; n != 1 {
			t.Errorf("prepare committed %d transactions, want 1", n)
		}
		if err := sn.Commit(ctx, "a-done", "a"); err != nil {
			t.Fatal(err)
		}
		first := backingKeyOf(t, db, "ns", name, "a-done")

		// A DB over the same files starts counting from what was stored.
		again := NewDB(db.db, db.cs.backing, map[string]snapshots.Snapshotter{name: backing})
		sn2 := again.Snapshotter(name)
		if _, err := sn2.Prepare(ctx, "b", "a-done"); err != nil {
			t.Fatal(err)
		}
		second := backingKeyOf(t, db, "ns", name, "b")
		if second == first || second == backingKey("ns", 1, "b") {
			t.Errorf("backing key %q reused a number (first %q)", second, first)
		}

		// An unrecorded backing snapshot holds the next number for "c".
		var seq uint64
		db.db.View(func(tx *bolt.Tx) error {
			seq = getSnapshotterBucket(tx, "ns", name).Sequence()
			return nil
		})
		stale := backingKey("ns", seq+1, "c")
		if _, err := backing.Prepare(context.Background(), stale, ""); err != nil {
			t.Fatal(err)
		}
		third := NewDB(db.db, db.cs.backing, map[string]snapshots.Snapshotter{name: backing})
		if _, err := third.Snapshotter(name).Prepare(ctx, "c", ""); err != nil {
			t.Fatalf("prepare past a stale backing snapshot: %v", err)
		}
		if got := backingKeyOf(t, db, "ns", name, "c"); got == stale {
			t.Errorf("c recorded over the stale backing snapshot %q", stale)
		}
	})
}

// A snapshot prepared without a parent and committed with one is recorded
// in the parent's chain, and the backing snapshotter is rebased onto the
// parent's backing snapshot: the parallel unpack of overlay layers.
func TestSnapshotCommitRebase(t *testing.T) {
	db, _ := openSnapshotDB(t, "overlayfs")
	sn := db.Snapshotter("overlayfs")
	ctx := nsContext("default")
	withParent := func(parent string) snapshots.Opt {
		return func(info *snapshots.Info) error { info.Parent = parent; return nil }
	}

	commitLayer(t, ctx, sn, "l1", "", map[string]string{"a": "1", "b": "1"})
	commitLayer(t, ctx, sn, "l2", "", map[string]string{"b": "2"}, withParent("l1"))

	info, err := sn.Stat(ctx, "l2")
	if err != nil || info.Parent != "l1" {
		t.Fatalf("Stat(l2) = %+v, %v; want parent l1", info, err)
	}
	m, err := sn.View(ctx, "v", "l2")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := readFiles(t, m), map[string]string{"a": "1", "b": "2"}; !maps.Equal(got, want) {
		t.Errorf("a view of l2 reads %v, want %v", got, want)
	}
	if err := sn.Remove(ctx, "l1"); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("removing l1 under l2: %v, want FailedPrecondition", err)
	}

	// A snapshot keeps the parent it was prepared on; a parent must exist.
	if _, err := sn.Prepare(ctx, "k3", "l1"); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, "l3", "k3", withParent("l2")); !errdefs.IsInvalidArgument(err) {
		t.Errorf("commit of a snapshot with a parent onto another: %v, want InvalidArgument", err)
	}
	if _, err := sn.Prepare(ctx, "k4", ""); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, "l4", "k4", withParent("nothing")); !errdefs.IsNotFound(err) {
		t.Errorf("commit onto a missing parent: %v, want NotFound", err)
	}
	if _, err := sn.Stat(ctx, "k4"); err != nil {
		t.Errorf("a refused commit lost its active snapshot: %v", err)
	}
}
