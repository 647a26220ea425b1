package runc

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/api/types/runc/options"
	"github.com/llitfkitfk/containerd/runtime/v2/shim"
)

func TestManagerGroup(t *testing.T) {
	for _, c := range []struct {
		name, spec, want string
	}{
		{"none", `{"annotations":{"other":"x"}}`, "task"},
		{"cri sandbox", `{"annotations":{"io.kubernetes.cri.sandbox-id":"pod"}}`, "pod"},
		{"runc group first", `{"annotations":{"io.kubernetes.cri.sandbox-id":"pod","io.containerd.runc.v2.group":"g"}}`, "g"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(c.spec), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := New().Group(shim.StartOpts{ID: "task", Bundle: dir})
			if err != nil || got != c.want {
				t.Errorf("group %q, %v; want %q", got, err, c.want)
			}
		})
	}
	if _, err := New().Group(shim.StartOpts{ID: "task", Bundle: t.TempDir()}); err == nil {
		t.Error("group of a bundle without config.json")
	}
	if New().Name() != "io.containerd.runc.v2" {
		t.Errorf("name %q", New().Name())
	}
}

func TestManagerShimCgroup(t *testing.T) {
	b, err := proto.Marshal(&options.Options{ShimCgroup: "/shims", BinaryName: "crun"})
	if err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{"containerd.runc.v1.Options", "type.googleapis.com/containerd.runc.v1.Options"} {
		if got := New().ShimCgroup(shim.StartOpts{Options: &anypb.Any{TypeUrl: url, Value: b}}); got != "/shims" {
			t.Errorf("shim cgroup from %s: %q", url, got)
		}
	}
	if got := New().ShimCgroup(shim.StartOpts{Options: &anypb.Any{TypeUrl: "other.Options", Value: b}}); got != "" {
		t.Errorf("shim cgroup from other options: %q", got)
	}
	if got := New().ShimCgroup(shim.StartOpts{}); got != "" {
		t.Errorf("shim cgroup without options: %q", got)
	}
}

// The options Create keeps in the bundle are what Stop runs runc with.
func TestOptionsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	o, err := readOptions(dir)
	if err != nil || o.GetRoot() != "" {
		t.Fatalf("options of a bundle without any: %v, %v", o, err)
	}
	if err := writeOptions(dir, &options.Options{Root: "/tmp/r", BinaryName: "/usr/bin/crun", SystemdCgroup: true}); err != nil {
		t.Fatal(err)
	}
	o, err = readOptions(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := newRunc(o, "ns")
	if r.Root != "/tmp/r/ns" || r.Command != "/usr/bin/crun" || !r.SystemdCgroup {
		t.Errorf("runc from kept options: %+v", r)
	}
	if r := newRunc(&options.Options{}, "ns"); r.Root != "/run/containerd/runc/ns" || r.Command != "runc" {
		t.Errorf("default runc: %+v", r)
	}
}
