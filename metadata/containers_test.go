package metadata

import (
	"maps"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/errdefs"
)

const specURL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"

func testContainer(id string) containers.Container {
	return containers.Container{
		ID:      id,
		Image:   "docker.io/library/busybox:latest",
		Runtime: containers.RuntimeInfo{Name: "io.containerd.runc.v2"},
		Spec:    &anypb.Any{TypeUrl: specURL, Value: []byte(`{"ociVersion":"1.0.2"}`)},
	}
}

func containerIDs(list []containers.Container) []string {
	var ids []string
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestContainersCRUD(t *testing.T) {
	db, _ := openTestDB(t)
	store := NewContainerStore(db)
	ctx := nsContext("ns")

	in := testContainer("c1")
	in.Labels = map[string]string{"a": "1", "empty": ""}
	in.Runtime.Options = &anypb.Any{TypeUrl: "containerd.runc.v1.Options", Value: []byte{0x0a, 0x01, 'x'}}
	in.Snapshotter, in.SnapshotKey = "overlayfs", "c1"
	in.Extensions = map[string]*anypb.Any{"ext": {TypeUrl: "x", Value: []byte("y")}}
	in.SandboxID = "sb"
	in.CreatedAt = time.Unix(1, 0) // ignored
	created, err := store.Create(ctx, in)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if time.Since(created.CreatedAt) > time.Minute || !created.UpdatedAt.Equal(created.CreatedAt) {
		t.Errorf("created times = %v, %v", created.CreatedAt, created.UpdatedAt)
	}
	got, err := store.Get(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "c1" || got.Image != in.Image || got.Runtime.Name != in.Runtime.Name ||
		!proto.Equal(got.Runtime.Options, in.Runtime.Options) || !proto.Equal(got.Spec, in.Spec) ||
		got.Snapshotter != "overlayfs" || got.SnapshotKey != "c1" || got.SandboxID != "sb" ||
		!maps.Equal(got.Labels, map[string]string{"a": "1"}) ||
		len(got.Extensions) != 1 || !proto.Equal(got.Extensions["ext"], in.Extensions["ext"]) ||
		!got.CreatedAt.Equal(created.CreatedAt) {
		t.Fatalf("Get = %+v\nwant %+v", got, in)
	}

	if _, err := store.Create(ctx, testContainer("c1")); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second Create: %v, want AlreadyExists", err)
	}
	if _, err := store.Get(nsContext("other"), "c1"); !errdefs.IsNotFound(err) {
		t.Errorf("Get in another namespace: %v, want NotFound", err)
	}

	if err := store.Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(ctx, "c1"); !errdefs.IsNotFound(err) {
		t.Errorf("Get after Delete: %v", err)
	}
	if err := store.Delete(ctx, "c1"); !errdefs.IsNotFound(err) {
		t.Errorf("second Delete: %v, want NotFound", err)
	}
}

func TestContainersValidation(t *testing.T) {
	db, _ := openTestDB(t)
	store := NewContainerStore(db)
	ctx := nsContext("ns")

	for name, mod := range map[string]func(*containers.Container){
		"bad id":            func(c *containers.Container) { c.ID = "a/b" },
		"empty id":          func(c *containers.Container) { c.ID = "" },
		"no runtime":        func(c *containers.Container) { c.Runtime.Name = "" },
		"no spec":           func(c *containers.Container) { c.Spec = nil },
		"key, no sn":        func(c *containers.Container) { c.SnapshotKey = "k" },
		"empty label key":   func(c *containers.Container) { c.Labels = map[string]string{"": "v"} },
		"empty ext name":    func(c *containers.Container) { c.Extensions = map[string]*anypb.Any{"": {}} },
		"label is too long": func(c *containers.Container) { c.Labels = map[string]string{"k": string(make([]byte, 5000))} },
	} {
		c := testContainer("c")
		mod(&c)
		if _, err := store.Create(ctx, c); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: Create = %v, want InvalidArgument", name, err)
		}
	}
	if _, err := store.Create(nsContext(""), testContainer("c")); err == nil {
		t.Error("Create without a namespace succeeded")
	}
}

func TestContainersUpdate(t *testing.T) {
	db, _ := openTestDB(t)
	store := NewContainerStore(db)
	ctx := nsContext("ns")

	in := testContainer("c1")
	in.Labels = map[string]string{"a": "1", "b": "2"}
	in.Snapshotter, in.SnapshotKey = "naive", "k1"
	in.Extensions = map[string]*anypb.Any{"e1": {TypeUrl: "1"}, "e2": {TypeUrl: "2"}}
	created, err := store.Create(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)

	// One label set, one removed; nothing else changes.
	up, err := store.Update(ctx, containers.Container{ID: "c1", Labels: map[string]string{"a": "x"}}, "labels.a", "labels.b")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(up.Labels, map[string]string{"a": "x"}) || up.Image != in.Image || up.SnapshotKey != "k1" ||
		!proto.Equal(up.Spec, in.Spec) || len(up.Extensions) != 2 {
		t.Fatalf("after labels update: %+v", up)
	}
	if !up.CreatedAt.Equal(created.CreatedAt) || !up.UpdatedAt.After(created.UpdatedAt) {
		t.Errorf("times after update: %v, %v (created %v)", up.CreatedAt, up.UpdatedAt, created.CreatedAt)
	}
	if got, _ := store.Get(ctx, "c1"); !maps.Equal(got.Labels, up.Labels) {
		t.Errorf("stored labels = %v", got.Labels)
	}

	// Field by field.
	spec := &anypb.Any{TypeUrl: specURL, Value: []byte(`{}`)}
	up, err = store.Update(ctx, containers.Container{
		ID: "c1", Image: "img2", Spec: spec, SnapshotKey: "k2",
		Extensions: map[string]*anypb.Any{"e3": {TypeUrl: "3"}},
	}, "image", "spec", "snapshotkey", "extensions.e1", "extensions.e3")
	if err != nil {
		t.Fatal(err)
	}
	if up.Image != "img2" || !proto.Equal(up.Spec, spec) || up.SnapshotKey != "k2" || up.Snapshotter != "naive" ||
		up.Extensions["e1"] != nil || up.Extensions["e2"] == nil || up.Extensions["e3"] == nil {
		t.Fatalf("after field update: %+v", up)
	}

	// A full replace keeps the immutable fields and refuses to change them.
	full := up
	full.Labels = map[string]string{"z": "1"}
	full.Extensions = nil
	up, err = store.Update(ctx, full)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(up.Labels, full.Labels) || up.Extensions != nil || up.Runtime.Name != in.Runtime.Name {
		t.Fatalf("after full update: %+v", up)
	}
	full.Runtime.Name = "other"
	if _, err := store.Update(ctx, full); !errdefs.IsInvalidArgument(err) {
		t.Errorf("full update changing runtime: %v", err)
	}
	full.Runtime.Name, full.Snapshotter = in.Runtime.Name, "overlayfs"
	if _, err := store.Update(ctx, full); !errdefs.IsInvalidArgument(err) {
		t.Errorf("full update changing snapshotter: %v", err)
	}

	for _, path := range []string{"runtime", "runtime.name", "snapshotter", "id", "createdat", "nonsense"} {
		if _, err := store.Update(ctx, containers.Container{ID: "c1"}, path); !errdefs.IsInvalidArgument(err) {
			t.Errorf("update %q: %v, want InvalidArgument", path, err)
		}
	}
	if _, err := store.Update(ctx, containers.Container{ID: "c1"}, "spec"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("clearing the spec: %v, want InvalidArgument", err)
	}
	if _, err := store.Update(ctx, containers.Container{ID: "nope"}, "image"); !errdefs.IsNotFound(err) {
		t.Errorf("update of a missing container: %v", err)
	}
	if _, err := store.Update(ctx, containers.Container{}, "image"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("update without id: %v", err)
	}
}

func TestContainersList(t *testing.T) {
	db, _ := openTestDB(t)
	store := NewContainerStore(db)
	ctx := nsContext("ns")

	for _, c := range []containers.Container{
		func() containers.Container {
			c := testContainer("a")
			c.Labels = map[string]string{"role": "web", "x.y": "1"}
			c.Snapshotter, c.SnapshotKey = "overlayfs", "a"
			return c
		}(),
		func() containers.Container {
			c := testContainer("b")
			c.Image = "other"
			c.Runtime.Name = "io.containerd.runsc.v1"
			c.Labels = map[string]string{"role": "db"}
			return c
		}(),
		testContainer("c"),
	} {
		if _, err := store.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.Create(nsContext("other"), testContainer("z")); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		filters []string
		want    []string
	}{
		{nil, []string{"a", "b", "c"}},
		{[]string{"id==b"}, []string{"b"}},
		{[]string{"image==other"}, []string{"b"}},
		{[]string{"runtime.name==io.containerd.runc.v2"}, []string{"a", "c"}},
		{[]string{"labels.role"}, []string{"a", "b"}},
		{[]string{"labels.role==web", "labels.role==db"}, []string{"a", "b"}},
		{[]string{`labels."x.y"==1`}, []string{"a"}},
		{[]string{"snapshotter==overlayfs,snapshotkey==a"}, []string{"a"}},
		{[]string{"id~=^[ab]$,labels.role!=web"}, []string{"b"}},
	} {
		list, err := store.List(ctx, tc.filters...)
		if err != nil {
			t.Fatalf("List(%q): %v", tc.filters, err)
		}
		if got := containerIDs(list); !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %v, want %v", tc.filters, got, tc.want)
		}
	}
	if _, err := store.List(ctx, "id=="); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad filter: %v, want InvalidArgument", err)
	}
	if list, err := store.List(nsContext("empty")); err != nil || len(list) != 0 {
		t.Errorf("List in an empty namespace = %v, %v", list, err)
	}
}
