// Package testsuite checks that a snapshotter behaves as the snapshots
// package documents, by running it through the life of layered images:
// prepare, write, commit, view, remove. The tests mount what snapshotters
// return, so they need root; without it they are skipped.
package testsuite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/snapshots"
)

// NewFunc makes a snapshotter keeping its data under root, which exists,
// and returns with it a function that closes it.
type NewFunc func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error)

// SnapshotterSuite runs every check against snapshotters made by
// newSnapshotter, each in a fresh root.
func SnapshotterSuite(t *testing.T, name string, newSnapshotter NewFunc) {
	for _, tc := range []struct {
		name string
		fn   func(ctx context.Context, t *testing.T, s snapshots.Snapshotter, root string)
	}{
		{"Chain", checkChain},
		{"ParentUnchanged", checkParentUnchanged},
		{"Stat", checkStat},
		{"Errors", checkErrors},
		{"RemoveWithChildren", checkRemoveWithChildren},
		{"RemoveAndReuseKey", checkRemoveAndReuseKey},
		{"Update", checkUpdate},
		{"Walk", checkWalk},
		{"Usage", checkUsage},
		{"ViewReadOnly", checkViewReadOnly},
		{"CommitLabels", checkCommitLabels},
		{"HostileKeys", checkHostileKeys},
		{"Concurrent", checkConcurrent},
		{"DeepChain", checkDeepChain},
		{"Cleanup", checkCleanup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, s, root := open(t, newSnapshotter)
			tc.fn(ctx, t, s, root)
		})
	}
	t.Run("Reopen", func(t *testing.T) { checkReopen(t, newSnapshotter) })
	t.Run("Close", func(t *testing.T) { checkClose(t, newSnapshotter) })
}

// open makes a snapshotter in a fresh root, closed when the test ends.
// newRoot returns an empty root for a snapshotter, skipping the test
// where it cannot mount.
func newRoot(t *testing.T) (context.Context, string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("snapshotter tests mount filesystems, which needs root")
	}
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	return context.Background(), root
}

func open(t *testing.T, newSnapshotter NewFunc) (context.Context, snapshots.Snapshotter, string) {
	t.Helper()
	ctx, root := newRoot(t)
	s, closeFn, err := newSnapshotter(ctx, root)
	if err != nil {
		t.Fatalf("new snapshotter: %v", err)
	}
	t.Cleanup(func() {
		if err := closeFn(); err != nil {
			t.Errorf("close snapshotter: %v", err)
		}
	})
	return ctx, s, root
}

// A change is applied to a mounted snapshot: a file written (content), a
// directory made (content "/"), or a path removed (content "").
type change struct{ path, content string }

func apply(root string, changes []change) error {
	for _, c := range changes {
		p := filepath.Join(root, c.path)
		var err error
		switch c.content {
		case "":
			err = os.RemoveAll(p)
		case "/":
			err = os.MkdirAll(p, 0o755)
		default:
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				err = os.WriteFile(p, []byte(c.content), 0o644)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// check compares the mounted tree at root with want: regular files by
// content, directories as "/". Paths not in want must not exist.
func check(root string, want map[string]string) error {
	got := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case fi.IsDir():
			got[rel] = "/"
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			got[rel] = string(b)
		default:
			got[rel] = fi.Mode().String()
		}
		return nil
	})
	if err != nil {
		return err
	}
	var diffs []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s missing", p))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s = %q, want %q", p, g, w))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected %s (%q)", p, g))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		return errors.New(strings.Join(diffs, "; "))
	}
	return nil
}

// prepareCommit prepares key on parent, applies changes, and commits it as
// name.
func prepareCommit(ctx context.Context, t *testing.T, s snapshots.Snapshotter, name, key, parent string, changes ...change) {
	t.Helper()
	mounts, err := s.Prepare(ctx, key, parent)
	if err != nil {
		t.Fatalf("prepare %q on %q: %v", key, parent, err)
	}
	if err := mount.WithTempMount(ctx, mounts, func(root string) error { return apply(root, changes) }); err != nil {
		t.Fatalf("apply changes to %q: %v", key, err)
	}
	if err := s.Commit(ctx, name, key); err != nil {
		t.Fatalf("commit %q as %q: %v", key, name, err)
	}
}

// checkMounts mounts mounts and compares the result with want.
func checkMounts(ctx context.Context, t *testing.T, what string, mounts []mount.Mount, want map[string]string) {
	t.Helper()
	if err := mount.WithTempMount(ctx, mounts, func(root string) error { return check(root, want) }); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// checkView makes a view of parent and compares it with want.
func checkView(ctx context.Context, t *testing.T, s snapshots.Snapshotter, parent string, want map[string]string) {
	t.Helper()
	key := "view-" + parent + "-" + fmt.Sprint(time.Now().UnixNano())
	mounts, err := s.View(ctx, key, parent)
	if err != nil {
		t.Fatalf("view %q: %v", parent, err)
	}
	checkMounts(ctx, t, "view of "+parent, mounts, want)
	if err := s.Remove(ctx, key); err != nil {
		t.Errorf("remove view %q: %v", key, err)
	}
}

func wantErr(t *testing.T, what string, err error, is func(error) bool, kind string) {
	t.Helper()
	if !is(err) {
		t.Errorf("%s: got error %v, want %s", what, err, kind)
	}
}

func checkChain(ctx context.Context, t *testing.T, s snapshots.Snapshotter, _ string) {
	prepareCommit(ctx, t, s, "l1", "k1", "",
		change{"a", "1"}, change{"dir/b", "2"}, change{"gone", "x"}, change{"gonedir/f", "y"})
	prepareCommit(ctx, t, s, "l2", "k2", "l1",
		change{"a", "1b"}, change{"c", "3"}, change{"gone", ""}, change{"gonedir", ""})
	prepareCommit(ctx, t, s, "l3", "k3", "l2",
		change{"d/e", "4"}, change{"dir/b", ""}, change{"gone", "back"})

	checkView(ctx, t, s, "l1", map[string]string{
		"a": "1", "dir": "/", "dir/b": "2", "gone": "x", "gonedir": "/", "gonedir/f": "y",
	})
	checkView(ctx, t, s, "l2", map[string]string{
		"a": "1b", "dir": "/", "dir/b": "2", "c": "3",
	})
	l3 := map[string]string{
		"a": "1b", "dir": "/", "c": "3", "d": "/", "d/e": "4", "gone": "back",
	}
	checkView(ctx, t, s, "l3", l3)

	// An active snapshot on top starts with the same content, and Mounts
	// returns the same mounts again.
	mounts, err := s.Prepare(ctx, "k4", "l3")
	if err != nil {
		t.Fatal(err)
	}
	checkMounts(ctx, t, "active on l3", mounts, l3)
	again, err := s.Mounts(ctx, "k4")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(again) != fmt.Sprint(mounts) {
		t.Errorf("Mounts = %v, Prepare returned %v", again, mounts)
	}
}

func checkParentUnchanged(ctx context.Context, t *testing.T, s snapshots.Snapshotter, _ string) {
	prepareCommit(ctx, t, s, "base", "k", "", change{"f", "base"}, change{"d/g", "g"})
	mounts, err := s.Prepare(ctx, "child", "base")
	if err != nil {
		t.Fatal(err)
	}
	err = mount.WithTempMount(ctx, mounts, func(root string) error {
		return apply(root, []change{{"f", "changed"}, {"d", ""}, {"new", "n"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	checkView(ctx, t, s, "base", map[string]string{"f": "base", "d": "/", "d/g": "g"})
	checkMounts(ctx, t, "child", mounts, map[string]string{"f": "changed", "new": "n"})
}

func checkStat(ctx context.Context, t *testing.T, s snapshots.Snapshotter, _ string) {
	before := time.Now().Add(-time.Second)
	if _, err := s.Prepare(ctx, "k", "", snapshots.WithLabels(map[string]string{"l": "v"})); err != nil {
		t.Fatal(err)
	}
	info, err := s.Stat(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != snapshots.KindActive || info.Name != "k" || info.Parent != "" || info.Labels["l"] != "v" {
		t.Errorf("active: %+v", info)
	}
	if info.Created.Before(before) || info.Updated.Before(info.Created) {
		t.Errorf("active times: created %v, updated %v", info.Created, info.Updated)
	}
	if err := s.Commit(ctx, "c", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "k"); !errdefs.IsNotFound(err) {
		t.Errorf("stat committed key: %v, want not found", err)
	}
	if info, err = s.Stat(ctx, "c"); err != nil || info.Kind != snapshots.KindCommitted || info.Name != "c" {
		t.Errorf("committed: %+v, %v", info, err)
	}
	if _, err := s.View(ctx, "v", "c"); err != nil {
		t.Fatal(err)
	}
	if info, err = s.Stat(ctx, "v"); err != nil || info.Kind != snapshots.KindView || info.Parent != "c" {
		t.Errorf("view: %+v, %v", info, err)
	}
	_, err = s.Stat(ctx, "missing")
	wantErr(t, "stat missing", err, errdefs.IsNotFound, "not found")
}

func checkErrors(ctx context.Context, t *testing.T, s snapshots.Snapshotter, _ string) {
	prepareCommit(ctx, t, s, "committed", "k0", "")
	if _, err := s.Prepare(ctx, "active", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.View(ctx, "view", "committed"); err != nil {
		t.Fatal(err)
	}

	_, err := s.Prepare(ctx, "active", "")
	wantErr(t, "prepare an existing key", err, errdefs.IsAlreadyExists, "already exists")
	_, err = s.View(ctx, "committed", "")
	wantErr(t, "view on a committed name", err, errdefs.IsAlreadyExists, "already exists")
	_, err = s.Prepare(ctx, "x", "missing")
	wantErr(t, "prepare on a missing parent", err, errdefs.IsNotFound, "not found")
	_, err = s.Prepare(ctx, "x", "active")
	wantErr(t, "prepare on an active parent", err, errdefs.IsFailedPrecondition, "failed precondition")
	_, err = s.View(ctx, "x", "view")
	wantErr(t, "view on a view", err, errdefs.IsFailedPrecondition, "failed precondition")
	_, err = s.Prepare(ctx, "", "")
	wantErr(t, "prepare an empty key", err, errdefs.IsInvalidArgument, "invalid argument")

	err = s.Commit(ctx, "c2", "view")
	wantErr(t, "commit a view", err, errdefs.IsFailedPrecondition, "failed precondition")
	err = s.Commit(ctx, "c2", "committed")
	wantErr(t, "commit a committed snapshot", err, errdefs.IsFailedPrecondition, "failed precondition")
	err = s.Commit(ctx, "committed", "active")
	wantErr(t, "commit onto an existing name", err, errdefs.IsAlreadyExists, "already exists")
	err = s.Commit(ctx, "c2", "missing")
	wantErr(t, "commit a missing key", err, errdefs.IsNotFound, "not found")
	if _, err := s.Stat(ctx, "active"); err != nil {
		t.Errorf("a failed commit lost the active snapshot: %v", err)
	}

	_, err = s.Mounts(ctx, "committed")
	wantErr(t, "mounts of a committed snapshot", err, errdefs.IsFailedPrecondition, "failed precondition")
	_, err = s.Mounts(ctx, "missing")
	wantErr(t, "mounts of a missing key", err, errdefs.IsNotFound, "not found")
	_, err = s.Usage(ctx, "missing")
	wantErr(t, "usage of a missing key", err, errdefs.IsNotFound, "not found")
	err = s.Remove(ctx, "missing")
	wantErr(t, "remove a missing key", err, errdefs.IsNotFound, "not found")
}

func checkRemoveWithChildren(ctx context.Context, t *testing.T, s snapshots.Snapshotter, _ string) {
	prepareCommit(ctx, t, s, "base", "k1", "", change{"f", "1"})
	prepareCommit(ctx, t, s, "mid", "k2", "base", change{"g", "2"})
	if _, err := s.Prepare(ctx, "active", "mid"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.View(ctx, "view", "base"); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"base", "mid"} {
		err := s.Remove(ctx, key)
		wantErr(t, "remove "+key+" with children", err, errdefs.IsFailedPrecondition, "failed precondition")
	}
	checkView(ctx, t, s, "mid", map[string]string{"f": "1", "g": "2"})

	for _, key := range []string{"active", "mid", "view", "base"} {
		if err := s.Remove(ctx, key); err != nil {
			t.Fatalf("remove %s: %v", key, err)
		}
	}
	n := 0
	if err := s.Walk(ctx, func(context.Context, snapshots.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d snapshots left after removing all", n)
	}
}

func checkRemoveAndReuseKey(ctx context.Context, t *testing.T, s snapshots.Snapshotter, _ string) {
	mounts, err := s.Prepare(ctx, "k", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := mount.WithTempMount(ctx, mounts, func(root string) error { return apply(root, []change{{"f", "old"}}) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if mounts, err = s.Prepare(ctx, "k", ""); err != nil {
		t.Fatal(err)
	}
	checkMounts(ctx, t, "reused key", mounts, map[string]string{})
}

func checkUpdate(ctx context.Context, t *testing.T, s snapshots.Snapshotter, _ string) {
	if _, err := s.Prepare(ctx, "k", "", snapshots.WithLabels(map[string]string{"a": "1", "b": "2"})); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Stat(ctx, "k")

	info, err := s.Update(ctx, snapshots.Info{Name: "k", Labels: map[string]string{"a": "x", "c": "3"}}, "labels.a")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(info.Labels) != "map[a:x b:2]" {
		t.Errorf("labels.a: labels %v", info.Labels)
	}
	if !info.Updated.After(before.Updated) || !info.Created.Equal(before.Created) || info.Kind != snapshots.KindActive {
		t.Errorf("labels.a: info %+v, before %+v", info, before)
	}
	// A field path for a label the info does not have removes it.
	if info, err = s.Update(ctx, snapshots.Info{Name: "k"}, "labels.b"); err != nil || fmt.Sprint(info.Labels) != "map[a:x]" {
		t.Errorf("remove labels.b: %v, %v", info.Labels, err)
	}
	if info, err = s.Update(ctx, snapshots.Info{Name: "k", Labels: map[string]string{"z": "26"}}); err != nil || fmt.Sprint(info.Labels) != "map[z:26]" {
		t.Errorf("replace all labels: %v, %v", info.Labels, err)
	}
	if info, err = s.Update(ctx, snapshots.Info{Name: "k"}, "labels"); err != nil || len(info.Labels) != 0 {
		t.Errorf("clear labels: %v, %v", info.Labels, err)
	}
	if stat, _ := s.Stat(ctx, "k"); len(stat.Labels) != 0 {
		t.Errorf("labels after clearing: %v", stat.Labels)
	}

	for _, path := range []string{"kind", "parent", "name", "created"} {
		_, err := s.Update(ctx, snapshots.Info{Name: "k", Kind: snapshots.KindCommitted, Parent: "p"}, path)
		wantErr(t, "update "+path, err, errdefs.IsInvalidArgument, "invalid argument")
	}
	if stat, _ := s.Stat(ctx, "k"); stat.Kind != snapshots.KindActive || stat.Parent != "" {
		t.Errorf("immutable fields changed: %+v", stat)
	}
	_, err = s.Update(ctx, snapshots.Info{Name: "missing"})
	wantErr(t, "update missing", err, errdefs.IsNotFound, "not found")
}

func checkWalk(ctx context.Context, t *testing.T, s snapshots.Snapshotter, _ string) {
	prepareCommit(ctx, t, s, "base", "k0", "")
	if err := s.Commit(ctx, "x", "missing"); err == nil {
		t.Fatal("commit of a missing key succeeded")
	}
	if _, err := s.Prepare(ctx, "a1", "base", snapshots.WithLabels(map[string]string{"tier": "web", "example.com/x": "y"})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare(ctx, "a2", "", snapshots.WithLabels(map[string]string{"tier": "db"})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.View(ctx, "v1", "base"); err != nil {
		t.Fatal(err)
	}

	walk := func(filters ...string) string {
		t.Helper()
		var names []string
		err := s.Walk(ctx, func(ctx context.Context, info snapshots.Info) error {
			// The walk must leave the snapshotter usable from fn.
			if _, err := s.Stat(ctx, info.Name); err != nil {
				return err
			}
			names = append(names, info.Name)
			return nil
		}, filters...)
		if err != nil {
			t.Errorf("walk %q: %v", filters, err)
		}
		sort.Strings(names)
		return strings.Join(names, " ")
	}
	for _, tc := range []struct {
		filters []string
		want    string
	}{
		{nil, "a1 a2 base v1"},
		{[]string{"kind==committed"}, "base"},
		{[]string{"kind==active"}, "a1 a2"},
		{[]string{"kind==view"}, "v1"},
		{[]string{"name==a2"}, "a2"},
		{[]string{"parent==base"}, "a1 v1"},
		{[]string{"labels.tier==web"}, "a1"},
		{[]string{"labels.tier"}, "a1 a2"},
		{[]string{`labels."example.com/x"==y`}, "a1"},
		{[]string{"kind==active,labels.tier==db"}, "a2"},
		{[]string{"kind==view", "name==base"}, "base v1"},
		{[]string{"name~=^a"}, "a1 a2"},
		{[]string{"labels.missing==x"}, ""},
	} {
		if got := walk(tc.filters...); got != tc.want {
			t.Errorf("walk %q = %q, want %q", tc.filters, got, tc.want)
		}
	}

	err := s.Walk(ctx, func(context.Context, snapshots.Info) error { return nil }, "name==")
	wantErr(t, "walk with a bad filter", err, errdefs.IsInvalidArgument, "invalid argument")

	stop := errors.New("stop")
	n := 0
	err = s.Walk(ctx, func(context.Context, snapshots.Info) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("walk stopped by fn: %v after %d calls", err, n)
	}

	// fn may change the snapshotter.
	err = s.Walk(ctx, func(ctx context.Context, info snapshots.Info) error {
		_, err := s.Update(ctx, snapshots.Info{Name: info.Name, Labels: map[string]string{"seen": "yes"}}, "labels.seen")
		return err
	})
	if err != nil {
		t.Errorf("update during walk: %v", err)
	}
	if got := walk("labels.seen==yes"); got != "a1 a2 base v1" {
		t.Errorf("labels set during walk: %q", got)
	}
}

func checkUsage(ctx context.Context, t *testing.T, s snapshots.Snapshotter, _ string) {
	const size = 1 << 20
	mounts, err := s.Prepare(ctx, "k", "")
	if err != nil {
		t.Fatal(err)
	}
	empty, err := s.Usage(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	err = mount.WithTempMount(ctx, mounts, func(root string) error {
		return os.WriteFile(filepath.Join(root, "big"), make([]byte, size), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	active, err := s.Usage(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if active.Size-empty.Size < size || active.Inodes != empty.Inodes+1 {
		t.Errorf("usage after writing %d bytes: %+v, before %+v", size, active, empty)
	}
	if err := s.Commit(ctx, "c", "k"); err != nil {
		t.Fatal(err)
	}
	committed, err := s.Usage(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if committed != active {
		t.Errorf("committed usage %+v, active usage was %+v", committed, active)
	}
}

func checkViewReadOnly(ctx context.Context, t *testing.T, s snapshots.Snapshotter, _ string) {
	prepareCommit(ctx, t, s, "base", "k", "", change{"f", "1"})
	for _, parent := range []string{"base", ""} {
		mounts, err := s.View(ctx, "v"+parent, parent)
		if err != nil {
			t.Fatal(err)
		}
		err = mount.WithTempMount(ctx, mounts, func(root string) error {
			for _, op := range []func() error{
				func() error { return os.WriteFile(filepath.Join(root, "new"), nil, 0o644) },
				func() error { return os.WriteFile(filepath.Join(root, "f"), []byte("2"), 0o644) },
				func() error { return os.Remove(filepath.Join(root, "f")) },
			} {
				if err := op(); !errors.Is(err, unix.EROFS) && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("write through the view: %v, want EROFS", err)
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("view of %q: %v", parent, err)
		}
	}
	checkView(ctx, t, s, "base", map[string]string{"f": "1"})
}

func checkCommitLabels(ctx context.Context, t *testing.T, s snapshots.Snapshotter, _ string) {
	if _, err := s.Prepare(ctx, "k", "", snapshots.WithLabels(map[string]string{"prepared": "1"})); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "c", "k", snapshots.WithLabels(map[string]string{"committed": "1"})); err != nil {
		t.Fatal(err)
	}
	info, err := s.Stat(ctx, "c")
	if err != nil || fmt.Sprint(info.Labels) != "map[committed:1]" {
		t.Errorf("committed labels: %v, %v", info.Labels, err)
	}
}

// checkHostileKeys uses keys that would escape the root if they were ever
// used as paths.
func checkHostileKeys(ctx context.Context, t *testing.T, s snapshots.Snapshotter, root string) {
	outside := filepath.Dir(root)
	listing := func() string {
		var names []string
		filepath.Walk(outside, func(p string, _ os.FileInfo, err error) error {
			if p == root {
				return filepath.SkipDir
			}
			names = append(names, p)
			return nil
		})
		return strings.Join(names, "\n")
	}
	var passwd unix.Stat_t
	unix.Stat("/etc/passwd", &passwd)
	before := listing()

	keys := []string{"../../x", "/etc/passwd", "../", "..", ".", "a/../../../b", "/", "snapshots", "metadata.db", "1", "rm-1", "new-1", "\x00nul", "x\ny"}
	parent := ""
	for i, key := range keys {
		name := keys[(i+1)%len(keys)] + "-committed"
		mounts, err := s.Prepare(ctx, key, parent)
		if err != nil {
			t.Fatalf("prepare %q: %v", key, err)
		}
		err = mount.WithTempMount(ctx, mounts, func(root string) error {
			return apply(root, []change{{fmt.Sprint("f", i), key}})
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, name, key); err != nil {
			t.Fatalf("commit %q as %q: %v", key, name, err)
		}
		if info, err := s.Stat(ctx, name); err != nil || info.Name != name || info.Parent != parent {
			t.Errorf("stat %q: %+v, %v", name, info, err)
		}
		parent = name
	}
	want := map[string]string{}
	for i, key := range keys {
		want[fmt.Sprint("f", i)] = key
	}
	checkView(ctx, t, s, parent, want)

	if after := listing(); after != before {
		t.Errorf("files outside the root changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	var now unix.Stat_t
	unix.Stat("/etc/passwd", &now)
	if now.Mtim != passwd.Mtim || now.Size != passwd.Size {
		t.Error("/etc/passwd changed")
	}
}

func checkConcurrent(ctx context.Context, t *testing.T, s snapshots.Snapshotter, _ string) {
	prepareCommit(ctx, t, s, "base", "k", "", change{"f", "base"})
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			key, name := fmt.Sprint("k", i), fmt.Sprint("c", i)
			mounts, err := s.Prepare(ctx, key, "base")
			if err == nil {
				err = mount.WithTempMount(ctx, mounts, func(root string) error {
					return apply(root, []change{{"own", key}})
				})
			}
			if err == nil {
				err = s.Commit(ctx, name, key)
			}
			errs <- err
		}()
		// Racing for one key: exactly one wins.
		go func() {
			defer wg.Done()
			_, err := s.Prepare(ctx, "contested", "base")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	exists := 0
	for err := range errs {
		switch {
		case errdefs.IsAlreadyExists(err):
			exists++
		case err != nil:
			t.Error(err)
		}
	}
	if exists != n-1 {
		t.Errorf("%d prepares of one key failed with already exists, want %d", exists, n-1)
	}
	for i := range n {
		checkView(ctx, t, s, fmt.Sprint("c", i), map[string]string{"f": "base", "own": fmt.Sprint("k", i)})
	}
}

// checkDeepChain stacks enough layers that a snapshotter passing each as
// a path in mount options must take care with their length.
func checkDeepChain(ctx context.Context, t *testing.T, s snapshots.Snapshotter, _ string) {
	const depth = 40
	parent := ""
	want := map[string]string{}
	for i := range depth {
		name := fmt.Sprint("layer-", i)
		prepareCommit(ctx, t, s, name, fmt.Sprint("key-", i), parent,
			change{fmt.Sprint("f", i), fmt.Sprint(i)}, change{"top", fmt.Sprint(i)})
		want[fmt.Sprint("f", i)] = fmt.Sprint(i)
		parent = name
	}
	want["top"] = fmt.Sprint(depth - 1)
	mounts, err := s.Prepare(ctx, "top", parent)
	if err != nil {
		t.Fatal(err)
	}
	checkMounts(ctx, t, "top of the chain", mounts, want)
}

func checkCleanup(ctx context.Context, t *testing.T, s snapshots.Snapshotter, _ string) {
	c, ok := s.(snapshots.Cleaner)
	if !ok {
		t.Skip("not a snapshots.Cleaner")
	}
	prepareCommit(ctx, t, s, "base", "k1", "", change{"f", "1"})
	if _, err := s.Prepare(ctx, "active", "base"); err != nil {
		t.Fatal(err)
	}
	prepareCommit(ctx, t, s, "gone", "k2", "base")
	if err := s.Remove(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	checkView(ctx, t, s, "base", map[string]string{"f": "1"})
	mounts, err := s.Mounts(ctx, "active")
	if err != nil {
		t.Fatal(err)
	}
	checkMounts(ctx, t, "active after cleanup", mounts, map[string]string{"f": "1"})
}

func checkReopen(t *testing.T, newSnapshotter NewFunc) {
	ctx, root := newRoot(t)
	s, closeFn, err := newSnapshotter(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	prepareCommit(ctx, t, s, "base", "k", "", change{"f", "1"})
	mounts, err := s.Prepare(ctx, "active", "base", snapshots.WithLabels(map[string]string{"l": "v"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := mount.WithTempMount(ctx, mounts, func(root string) error { return apply(root, []change{{"g", "2"}}) }); err != nil {
		t.Fatal(err)
	}
	if err := closeFn(); err != nil {
		t.Fatal(err)
	}

	s, closeFn, err = newSnapshotter(ctx, root)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer closeFn()
	if info, err := s.Stat(ctx, "active"); err != nil || info.Kind != snapshots.KindActive || info.Parent != "base" || info.Labels["l"] != "v" {
		t.Errorf("active after reopening: %+v, %v", info, err)
	}
	again, err := s.Mounts(ctx, "active")
	if err != nil {
		t.Fatal(err)
	}
	checkMounts(ctx, t, "active after reopening", again, map[string]string{"f": "1", "g": "2"})
	// New snapshots must not collide with the old ones.
	prepareCommit(ctx, t, s, "next", "k2", "base", change{"h", "3"})
	checkView(ctx, t, s, "next", map[string]string{"f": "1", "h": "3"})
	checkMounts(ctx, t, "active after a new commit", again, map[string]string{"f": "1", "g": "2"})
}

func checkClose(t *testing.T, newSnapshotter NewFunc) {
	ctx, s, _ := open(t, newSnapshotter)
	if _, err := s.Prepare(ctx, "k", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, err := s.Stat(ctx, "k"); err == nil {
		t.Error("stat after close succeeded")
	}
}
