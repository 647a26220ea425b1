package snapshots

import (
	"encoding/json"
	"fmt"
	"testing"
)

func TestKind(t *testing.T) {
	for _, k := range []Kind{KindUnknown, KindView, KindActive, KindCommitted} {
		if got := ParseKind(k.String()); got != k {
			t.Errorf("ParseKind(%q) = %v", k.String(), got)
		}
		b, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		var back Kind
		if err := json.Unmarshal(b, &back); err != nil || back != k {
			t.Errorf("JSON round trip of %v via %s: %v, %v", k, b, back, err)
		}
	}
	if ParseKind("COMMITTED") != KindCommitted || ParseKind("bogus") != KindUnknown {
		t.Error("ParseKind is not case-insensitive or accepts junk")
	}
	// The values are the wire's.
	if KindView != 1 || KindActive != 2 || KindCommitted != 3 {
		t.Error("kind values differ from the snapshots API")
	}
}

func TestUsageAdd(t *testing.T) {
	u := Usage{Inodes: 1, Size: 10}
	u.Add(Usage{Inodes: 2, Size: 20})
	if u != (Usage{Inodes: 3, Size: 30}) {
		t.Errorf("sum %+v", u)
	}
}

func TestWithLabels(t *testing.T) {
	var info Info
	src := map[string]string{"a": "1"}
	if err := WithLabels(src)(&info); err != nil {
		t.Fatal(err)
	}
	WithLabels(map[string]string{"b": "2"})(&info)
	info.Labels["c"] = "3"
	if fmt.Sprint(info.Labels) != "map[a:1 b:2 c:3]" || len(src) != 1 {
		t.Errorf("labels %v, source %v", info.Labels, src)
	}
}

func TestFilterInheritedLabels(t *testing.T) {
	got := FilterInheritedLabels(map[string]string{
		LabelSnapshotRef:                   "ref",
		"containerd.io/snapshot/remote":    "x",
		"containerd.io/gc.ref.snapshot.ov": "y",
		"other":                            "z",
	})
	if fmt.Sprint(got) != "map[containerd.io/snapshot.ref:ref containerd.io/snapshot/remote:x]" {
		t.Errorf("inherited %v", got)
	}
	if FilterInheritedLabels(nil) != nil {
		t.Error("nil labels filtered to non-nil")
	}
}
