package metadata

import (
	"fmt"
	"slices"
	"testing"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/filters"
	"github.com/llitfkitfk/containerd/leases"
)

// adaptLease is the lease's fields as filters read them from a decoded
// lease: what recordAdaptor must give from the record in place.
func adaptLease(l leases.Lease) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 0 {
			return "", false
		}
		switch fieldpath[0] {
		case "id":
			return l.ID, l.ID != ""
		case "labels":
			return mapField(fieldpath[1:], l.Labels)
		}
		return "", false
	})
}

// TestRecordFiltersMatchDecoded: filters evaluated on records in place
// (leases List, content Walk) pick exactly what they pick from the decoded
// records.
func TestRecordFiltersMatchDecoded(t *testing.T) {
	db, _ := openContentDB(t)
	ctx := nsContext("ns")
	lm := NewLeaseManager(db)
	store := db.ContentStore()
	labelSets := []map[string]string{nil, {"a": "1"}, {"a": "2", "b": "x"}, {"a.b": "c"}, {"b": ""}}
	for i, labels := range labelSets {
		if _, err := lm.Create(ctx, leases.WithID(fmt.Sprint("l-", i)), leases.WithLabels(labels)); err != nil {
			t.Fatal(err)
		}
		writeBlob(t, ctx, store, []byte(fmt.Sprint("blob ", i, " ", labels)), labels)
	}
	var allLeases []leases.Lease
	var allInfos []content.Info
	if list, err := lm.List(ctx); err == nil {
		allLeases = list
	} else {
		t.Fatal(err)
	}
	if err := store.Walk(ctx, func(info content.Info) error { allInfos = append(allInfos, info); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(allLeases) != len(labelSets) || len(allInfos) != len(labelSets) {
		t.Fatalf("%d leases and %d blobs, want %d of each", len(allLeases), len(allInfos), len(labelSets))
	}

	for _, f := range []string{
		"", "id==l-1", "id~=^l-[12]$", "id!=l-0", "labels.a==1", "labels.a", "labels", "labels.a!=1",
		`labels."a.b"==c`, "labels.b", "labels.a==2,labels.b==x", "digest==" + allInfos[0].Digest.String(),
		fmt.Sprint("size==", allInfos[1].Size), "size!=0", "nosuchfield", "labels.zz",
	} {
		fs := []string{f}
		if f == "" {
			fs = nil
		}
		filter, err := filters.ParseAll(fs...)
		if err != nil {
			t.Fatalf("%q: %v", f, err)
		}
		var want []string
		for _, l := range allLeases {
			if filter.Match(adaptLease(l)) {
				want = append(want, l.ID)
			}
		}
		got, err := lm.List(ctx, fs...)
		if err != nil {
			t.Fatal(err)
		}
		var gotIDs []string
		for _, l := range got {
			gotIDs = append(gotIDs, l.ID)
		}
		if !slices.Equal(gotIDs, want) {
			t.Errorf("leases %q: got %v, want %v", f, gotIDs, want)
		}

		var wantBlobs, gotBlobs []string
		for _, info := range allInfos {
			if filter.Match(content.AdaptInfo(info)) {
				wantBlobs = append(wantBlobs, info.Digest.String())
			}
		}
		err = store.Walk(ctx, func(info content.Info) error {
			gotBlobs = append(gotBlobs, info.Digest.String())
			return nil
		}, fs...)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(gotBlobs, wantBlobs) {
			t.Errorf("blobs %q: got %v, want %v", f, gotBlobs, wantBlobs)
		}
	}
}
