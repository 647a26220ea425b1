package metadata

import (
	"slices"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/identifiers"
	"github.com/llitfkitfk/containerd/leases"
)

func leaseIDs(ls []leases.Lease) []string {
	var ids []string
	for _, l := range ls {
		ids = append(ids, l.ID)
	}
	return ids
}

func TestLeasesCRUD(t *testing.T) {
	db, _ := openTestDB(t)
	lm := NewLeaseManager(db)
	ctx := nsContext("ns")

	l, err := lm.Create(ctx, leases.WithID("build"), leases.WithLabels(map[string]string{"a": "1", "empty": ""}), leases.WithExpiration(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if l.ID != "build" || time.Since(l.CreatedAt) > time.Minute || l.Labels["a"] != "1" || l.Labels[leases.LabelExpire] == "" {
		t.Errorf("Create = %+v", l)
	}
	if _, ok := l.Labels["empty"]; ok {
		t.Error("Create returned an empty label it did not store")
	}
	if _, err := lm.Create(ctx, leases.WithID("build")); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second Create = %v, want AlreadyExists", err)
	}

	random := createLease(t, ctx, lm, leases.WithLabels(map[string]string{"b": "2"}))
	if err := identifiers.Validate(random.ID); err != nil {
		t.Errorf("random id %q: %v", random.ID, err)
	}
	// containerd clients' random ids can end in '_' or '-'.
	createLease(t, ctx, lm, leases.WithID("473829012-ab_-"))

	for _, id := range []string{"a/b", "-lead", strings.Repeat("x", 77), "sp ace"} {
		if _, err := lm.Create(ctx, leases.WithID(id)); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Create(%q) = %v, want InvalidArgument", id, err)
		}
	}
	if _, err := lm.Create(ctx, leases.WithLabels(map[string]string{"k": strings.Repeat("v", 4096)})); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Create with an oversized label = %v, want InvalidArgument", err)
	}

	all, err := lm.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{random.ID, "473829012-ab_-", "build"}; !slices.Equal(leaseIDs(all), slices.Sorted(slices.Values(want))) {
		t.Errorf("List = %v", leaseIDs(all))
	}
	for _, tt := range []struct {
		filter string
		want   []string
	}{
		{"id==build", []string{"build"}},
		{"labels.a==1", []string{"build"}},
		{"labels.b", []string{random.ID}},
		{`labels."containerd.io/gc.expire"`, []string{"build"}},
	} {
		got, err := lm.List(ctx, tt.filter)
		if err != nil || !slices.Equal(leaseIDs(got), tt.want) {
			t.Errorf("List(%q) = %v, %v; want %v", tt.filter, leaseIDs(got), err, tt.want)
		}
	}
	if got, _ := lm.List(nsContext("other")); len(got) != 0 {
		t.Errorf("List in another namespace = %v", leaseIDs(got))
	}

	if err := lm.Delete(ctx, l); err != nil {
		t.Fatal(err)
	}
	if err := lm.Delete(ctx, l); !errdefs.IsNotFound(err) {
		t.Errorf("second Delete = %v, want NotFound", err)
	}
	if err := lm.Delete(nsContext("other"), random); !errdefs.IsNotFound(err) {
		t.Errorf("Delete in another namespace = %v, want NotFound", err)
	}
}

func TestLeaseResources(t *testing.T) {
	db, _ := openTestDB(t)
	lm := NewLeaseManager(db)
	ctx := nsContext("ns")
	l := createLease(t, ctx, lm, leases.WithID("l"))

	d1, d2 := digest.FromString("1"), digest.FromString("2")
	add := []leases.Resource{
		{ID: d2.String(), Type: "content"},
		{ID: d1.String(), Type: "content"},
		{ID: "ref", Type: "ingests"},
		{ID: "docker.io/library/busybox:latest", Type: "images"},
		{ID: "layer-1", Type: "snapshots/overlayfs"},
		{ID: "k", Type: "snapshots/native"},
	}
	for _, r := range add {
		if err := lm.AddResource(ctx, l, r); err != nil {
			t.Fatalf("AddResource(%v): %v", r, err)
		}
	}
	if err := lm.AddResource(ctx, l, add[0]); err != nil {
		t.Errorf("adding a resource twice: %v", err)
	}
	assertResources(t, ctx, lm, l,
		leases.Resource{ID: min(d1.String(), d2.String()), Type: "content"},
		leases.Resource{ID: max(d1.String(), d2.String()), Type: "content"},
		leases.Resource{ID: "ref", Type: "ingests"},
		leases.Resource{ID: "docker.io/library/busybox:latest", Type: "images"},
		leases.Resource{ID: "k", Type: "snapshots/native"},
		leases.Resource{ID: "layer-1", Type: "snapshots/overlayfs"},
	)

	for _, r := range add[1:] {
		if err := lm.DeleteResource(ctx, l, r); err != nil {
			t.Fatalf("DeleteResource(%v): %v", r, err)
		}
	}
	if err := lm.DeleteResource(ctx, l, leases.Resource{ID: "never", Type: "ingests"}); err != nil {
		t.Errorf("DeleteResource of one not held: %v", err)
	}
	assertResources(t, ctx, lm, l, add[0])

	for _, tt := range []struct {
		r  leases.Resource
		is func(error) bool
	}{
		{leases.Resource{ID: "nodigest", Type: "content"}, errdefs.IsInvalidArgument},
		{leases.Resource{ID: "", Type: "ingests"}, errdefs.IsInvalidArgument},
		{leases.Resource{ID: "x", Type: "snapshots"}, errdefs.IsInvalidArgument},
		{leases.Resource{ID: "x", Type: "snapshots/a/b"}, errdefs.IsInvalidArgument},
		{leases.Resource{ID: "x", Type: "content/sub"}, errdefs.IsInvalidArgument},
		{leases.Resource{ID: "x", Type: "containers"}, errdefs.IsNotImplemented},
	} {
		if err := lm.AddResource(ctx, l, tt.r); !tt.is(err) {
			t.Errorf("AddResource(%+v) = %v", tt.r, err)
		}
	}
	missing := leases.Lease{ID: "missing"}
	if err := lm.AddResource(ctx, missing, add[0]); !errdefs.IsNotFound(err) {
		t.Errorf("AddResource to a missing lease = %v, want NotFound", err)
	}
	if err := lm.DeleteResource(ctx, missing, add[0]); !errdefs.IsNotFound(err) {
		t.Errorf("DeleteResource from a missing lease = %v, want NotFound", err)
	}
	if _, err := lm.ListResources(ctx, missing); !errdefs.IsNotFound(err) {
		t.Errorf("ListResources of a missing lease = %v, want NotFound", err)
	}
}
