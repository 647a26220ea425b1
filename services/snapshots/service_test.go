package snapshots

import (
	"context"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	eventstypes "github.com/llitfkitfk/containerd/api/events"
	api "github.com/llitfkitfk/containerd/api/services/snapshots/v1"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/metadata"
	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/snapshots/naive"
)

// uncleanable hides the Cleanup of the snapshotter it wraps.
type uncleanable struct{ snapshots.Snapshotter }

type fixture struct {
	client api.SnapshotsClient
	pub    *testutil.Publisher
}

// newFixture serves a metadata DB with one naive snapshotter, named
// "naive", and the same again as "plain", which cannot clean up.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	backing, err := naive.NewSnapshotter(filepath.Join(dir, "naive"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backing.Close() })
	db, err := metadata.Open(context.Background(), filepath.Join(dir, "meta.db"), nil, map[string]snapshots.Snapshotter{"naive": backing})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	f := &fixture{pub: &testutil.Publisher{}}
	svc := &service{snapshotters: NewLocal(map[string]snapshots.Snapshotter{
		"naive": db.Snapshotter("naive"),
		"plain": uncleanable{db.Snapshotter("naive")},
	}, f.pub)}
	f.client = api.NewSnapshotsClient(testutil.Serve(t, svc.Register))
	return f
}

func TestLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := testutil.NS("test")

	prep, err := f.client.Prepare(ctx, &api.PrepareSnapshotRequest{Snapshotter: "naive", Key: "k", Labels: map[string]string{"a": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(prep.Mounts) != 1 || prep.Mounts[0].Type != "bind" || prep.Mounts[0].Source == "" || len(prep.Mounts[0].Options) == 0 {
		t.Errorf("prepare mounts %v", prep.Mounts)
	}
	mounts, err := f.client.Mounts(ctx, &api.MountsRequest{Snapshotter: "naive", Key: "k"})
	if err != nil || len(mounts.Mounts) != 1 || mounts.Mounts[0].Source != prep.Mounts[0].Source {
		t.Errorf("mounts %v, %v; prepare gave %v", mounts, err, prep.Mounts)
	}
	if _, err := f.client.Commit(ctx, &api.CommitSnapshotRequest{Snapshotter: "naive", Name: "c", Key: "k", Labels: map[string]string{"b": "2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Prepare(ctx, &api.PrepareSnapshotRequest{Snapshotter: "naive", Key: "child", Parent: "c"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.View(ctx, &api.ViewSnapshotRequest{Snapshotter: "naive", Key: "v", Parent: "c"}); err != nil {
		t.Fatal(err)
	}

	st, err := f.client.Stat(ctx, &api.StatSnapshotRequest{Snapshotter: "naive", Key: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Info.Name != "c" || st.Info.Kind != api.Kind_COMMITTED || st.Info.Parent != "" || st.Info.CreatedAt == nil ||
		!maps.Equal(st.Info.Labels, map[string]string{"b": "2"}) {
		t.Errorf("stat c: %v", st.Info)
	}
	st, err = f.client.Stat(ctx, &api.StatSnapshotRequest{Snapshotter: "naive", Key: "v"})
	if err != nil || st.Info.Kind != api.Kind_VIEW || st.Info.Parent != "c" {
		t.Errorf("stat v: %v, %v", st, err)
	}

	up, err := f.client.Update(ctx, &api.UpdateSnapshotRequest{
		Snapshotter: "naive",
		Info:        &api.Info{Name: "c", Labels: map[string]string{"x": "y"}},
		UpdateMask:  &fieldmaskpb.FieldMask{Paths: []string{"labels.x", "labels.b"}},
	})
	if err != nil || !maps.Equal(up.Info.Labels, map[string]string{"x": "y"}) || up.Info.Kind != api.Kind_COMMITTED {
		t.Errorf("update: %v, %v", up, err)
	}
	up, err = f.client.Update(ctx, &api.UpdateSnapshotRequest{Snapshotter: "naive", Info: &api.Info{Name: "c", Labels: map[string]string{"z": "1"}}})
	if err != nil || !maps.Equal(up.Info.Labels, map[string]string{"z": "1"}) {
		t.Errorf("update without mask: %v, %v", up, err)
	}

	u, err := f.client.Usage(ctx, &api.UsageRequest{Snapshotter: "naive", Key: "c"})
	if err != nil || u.Inodes < 1 {
		t.Errorf("usage: %v, %v", u, err)
	}

	_, err = f.client.Remove(ctx, &api.RemoveSnapshotRequest{Snapshotter: "naive", Key: "c"})
	testutil.CheckCode(t, "remove with children", err, codes.FailedPrecondition)
	for _, k := range []string{"child", "v", "c"} {
		if _, err := f.client.Remove(ctx, &api.RemoveSnapshotRequest{Snapshotter: "naive", Key: k}); err != nil {
			t.Fatalf("remove %s: %v", k, err)
		}
	}
	if _, err := f.client.Cleanup(ctx, &api.CleanupRequest{Snapshotter: "naive"}); err != nil {
		t.Errorf("cleanup: %v", err)
	}

	var got []string
	for _, ev := range f.pub.Take() {
		if ev.Namespace != "test" {
			t.Errorf("event in namespace %q", ev.Namespace)
		}
		switch e := ev.Event.(type) {
		case *eventstypes.SnapshotPrepare:
			got = append(got, fmt.Sprintf("%s %s %s %s", ev.Topic, e.Key, e.Parent, e.Snapshotter))
		case *eventstypes.SnapshotCommit:
			got = append(got, fmt.Sprintf("%s %s %s %s", ev.Topic, e.Key, e.Name, e.Snapshotter))
		case *eventstypes.SnapshotRemove:
			got = append(got, fmt.Sprintf("%s %s %s", ev.Topic, e.Key, e.Snapshotter))
		default:
			t.Errorf("unexpected event %T on %s", e, ev.Topic)
		}
	}
	want := []string{
		"/snapshot/prepare k  naive",
		"/snapshot/commit k c naive",
		"/snapshot/prepare child c naive",
		"/snapshot/remove child naive",
		"/snapshot/remove v naive",
		"/snapshot/remove c naive",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events:\n%q\nwant\n%q", got, want)
	}
}

func TestErrors(t *testing.T) {
	f := newFixture(t)
	ctx := testutil.NS("test")

	_, err := f.client.Prepare(ctx, &api.PrepareSnapshotRequest{Key: "k"})
	testutil.CheckCode(t, "no snapshotter", err, codes.InvalidArgument)
	_, err = f.client.Stat(ctx, &api.StatSnapshotRequest{Snapshotter: "nope", Key: "k"})
	testutil.CheckCode(t, "unknown snapshotter", err, codes.InvalidArgument)
	_, err = f.client.Stat(ctx, &api.StatSnapshotRequest{Snapshotter: "naive", Key: "k"})
	testutil.CheckCode(t, "stat missing", err, codes.NotFound)
	_, err = f.client.Stat(context.Background(), &api.StatSnapshotRequest{Snapshotter: "naive", Key: "k"})
	testutil.CheckCode(t, "no namespace", err, codes.FailedPrecondition)
	_, err = f.client.Prepare(ctx, &api.PrepareSnapshotRequest{Snapshotter: "naive", Key: "k", Parent: "missing"})
	testutil.CheckCode(t, "missing parent", err, codes.NotFound)
	_, err = f.client.Update(ctx, &api.UpdateSnapshotRequest{Snapshotter: "naive"})
	testutil.CheckCode(t, "update without info", err, codes.InvalidArgument)

	if _, err := f.client.Prepare(ctx, &api.PrepareSnapshotRequest{Snapshotter: "naive", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	_, err = f.client.Prepare(ctx, &api.PrepareSnapshotRequest{Snapshotter: "naive", Key: "k"})
	testutil.CheckCode(t, "prepare twice", err, codes.AlreadyExists)
	_, err = f.client.Commit(ctx, &api.CommitSnapshotRequest{Snapshotter: "naive", Name: "c", Key: "k", Parent: "p"})
	testutil.CheckCode(t, "commit onto a missing parent", err, codes.NotFound)
	if _, err := f.client.Commit(ctx, &api.CommitSnapshotRequest{Snapshotter: "naive", Name: "c", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Prepare(ctx, &api.PrepareSnapshotRequest{Snapshotter: "naive", Key: "k2"}); err != nil {
		t.Fatal(err)
	}
	_, err = f.client.Commit(ctx, &api.CommitSnapshotRequest{Snapshotter: "naive", Name: "c", Key: "k2"})
	testutil.CheckCode(t, "commit to an existing name", err, codes.AlreadyExists)
	// Naming the parent a snapshot was prepared on, as containerd 2.x's
	// unpacker does at every commit, changes nothing; another parent
	// cannot replace it.
	if _, err := f.client.Prepare(ctx, &api.PrepareSnapshotRequest{Snapshotter: "naive", Key: "k3", Parent: "c"}); err != nil {
		t.Fatal(err)
	}
	_, err = f.client.Commit(ctx, &api.CommitSnapshotRequest{Snapshotter: "naive", Name: "c3", Key: "k3", Parent: "k2"})
	testutil.CheckCode(t, "commit onto another parent", err, codes.InvalidArgument)
	if _, err := f.client.Commit(ctx, &api.CommitSnapshotRequest{Snapshotter: "naive", Name: "c3", Key: "k3", Parent: "c"}); err != nil {
		t.Fatalf("commit naming its own parent: %v", err)
	}
	if st, err := f.client.Stat(ctx, &api.StatSnapshotRequest{Snapshotter: "naive", Key: "c3"}); err != nil || st.Info.Parent != "c" {
		t.Fatalf("c3 after commit: %v, %v", st, err)
	}
	_, err = f.client.Mounts(ctx, &api.MountsRequest{Snapshotter: "naive", Key: "c"})
	testutil.CheckCode(t, "mounts of a committed snapshot", err, codes.FailedPrecondition)
	_, err = f.client.Update(ctx, &api.UpdateSnapshotRequest{Snapshotter: "naive", Info: &api.Info{Name: "c"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"kind"}}})
	testutil.CheckCode(t, "update of kind", err, codes.InvalidArgument)
	_, err = f.client.Cleanup(ctx, &api.CleanupRequest{Snapshotter: "plain"})
	testutil.CheckCode(t, "cleanup of a snapshotter that cannot", err, codes.Unimplemented)

	ls, err := f.client.List(ctx, &api.ListSnapshotsRequest{Snapshotter: "naive", Filters: []string{"kind=="}})
	if err == nil {
		_, err = ls.Recv()
	}
	testutil.CheckCode(t, "list with a bad filter", err, codes.InvalidArgument)
	if evs := f.pub.Take(); len(evs) != 5 {
		t.Errorf("events of failures published: %v", evs)
	}
}

func list(t *testing.T, c api.SnapshotsClient, ctx context.Context, req *api.ListSnapshotsRequest) (names []string, batches []int) {
	t.Helper()
	ls, err := c.List(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := ls.Recv()
		if err == io.EOF {
			return names, batches
		}
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, len(resp.Info))
		for _, info := range resp.Info {
			names = append(names, info.Name)
		}
	}
}

func TestListBatchesAndNamespaces(t *testing.T) {
	f := newFixture(t)
	ctx := testutil.NS("test")
	for i := range 201 {
		if _, err := f.client.Prepare(ctx, &api.PrepareSnapshotRequest{Snapshotter: "naive", Key: fmt.Sprintf("k%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.client.Prepare(testutil.NS("other"), &api.PrepareSnapshotRequest{Snapshotter: "naive", Key: "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	names, batches := list(t, f.client, ctx, &api.ListSnapshotsRequest{Snapshotter: "naive"})
	if len(names) != 201 || fmt.Sprint(batches) != "[100 100 1]" {
		t.Errorf("listed %d in batches %v", len(names), batches)
	}
	names, _ = list(t, f.client, ctx, &api.ListSnapshotsRequest{Snapshotter: "naive", Filters: []string{"name==k007", "name==k123"}})
	if fmt.Sprint(names) != "[k007 k123]" {
		t.Errorf("filtered list %v", names)
	}
	names, _ = list(t, f.client, testutil.NS("other"), &api.ListSnapshotsRequest{Snapshotter: "naive"})
	if fmt.Sprint(names) != "[elsewhere]" {
		t.Errorf("other namespace lists %v", names)
	}
	names, batches = list(t, f.client, testutil.NS("empty"), &api.ListSnapshotsRequest{Snapshotter: "naive"})
	if len(names) != 0 || len(batches) != 0 {
		t.Errorf("empty namespace lists %v in %v", names, batches)
	}
}
