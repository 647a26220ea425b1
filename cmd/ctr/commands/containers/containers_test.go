package containers

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/containers"
)

// info prints the record with its spec decoded, as containerd's ctr.
func TestInfoJSON(t *testing.T) {
	rec := containers.Container{
		ID:      "c1",
		Image:   "img",
		Runtime: containers.RuntimeInfo{Name: "io.containerd.runc.v2"},
		Spec:    &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec", Value: []byte(`{"process":{"args":["sleep","1"]}}`)},
	}
	v, err := infoJSON(rec, false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	var got struct {
		ID      string
		Image   string
		Runtime struct{ Name string }
		Spec    struct {
			Process struct{ Args []string }
		}
	}
	if err := json.Unmarshal(b, &got); err != nil || got.ID != "c1" || got.Image != "img" || got.Runtime.Name != "io.containerd.runc.v2" || len(got.Spec.Process.Args) != 2 {
		t.Fatalf("info %s: %v", b, err)
	}

	v, err = infoJSON(rec, true)
	if b, _ := json.Marshal(v); err != nil || string(b) != `{"process":{"args":["sleep","1"]}}` {
		t.Fatalf("--spec: %s, %v", b, err)
	}

	rec.Spec = &anypb.Any{TypeUrl: "x", Value: []byte("not json")}
	if _, err := infoJSON(rec, false); err == nil {
		t.Fatal("undecodable spec printed")
	}
	rec.Spec = nil
	if v, err := infoJSON(rec, false); err != nil || v.(containers.Container).ID != "c1" {
		t.Fatalf("no spec: %v, %v", v, err)
	}
}
