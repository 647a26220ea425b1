package plugin

import (
	"errors"
	"strings"
	"testing"
)

func reg(t Type, id string, requires ...Type) *Registration {
	return &Registration{Type: t, ID: id, Requires: requires, InitFn: func(*InitContext) (interface{}, error) { return id, nil }}
}

func uris(rs []*Registration) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return strings.Join(out, " ")
}

func TestGraphOrdersByRequires(t *testing.T) {
	var r Registry
	for _, x := range []*Registration{
		reg(GRPCPlugin, "introspection", All),
		reg(GRPCPlugin, "namespaces", MetadataPlugin),
		reg(MetadataPlugin, "bolt", ContentPlugin, SnapshotPlugin),
		reg(SnapshotPlugin, "naive"),
		reg(ContentPlugin, "content"),
		reg(SnapshotPlugin, "overlayfs"),
		reg(GRPCPlugin, "version"),
	} {
		if err := r.Register(x); err != nil {
			t.Fatal(err)
		}
	}
	got, err := r.Graph(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Dependencies first, registration order otherwise, All last.
	want := "content naive overlayfs bolt namespaces version introspection"
	if uris(got) != want {
		t.Fatalf("order = %q, want %q", uris(got), want)
	}
}

func TestGraphDisabled(t *testing.T) {
	var r Registry
	r.Register(reg(SnapshotPlugin, "naive"))
	r.Register(reg(MetadataPlugin, "bolt", SnapshotPlugin))
	got, err := r.Graph(func(x *Registration) bool { return x.URI() == "io.containerd.snapshotter.v1.naive" })
	if err != nil {
		t.Fatal(err)
	}
	if uris(got) != "bolt" {
		t.Fatalf("order = %q, want only bolt", uris(got))
	}
}

func TestGraphCycle(t *testing.T) {
	var r Registry
	r.Register(reg("a", "1", "b"))
	r.Register(reg("b", "2", "c"))
	r.Register(reg("c", "3", "a"))
	_, err := r.Graph(nil)
	if err == nil || !strings.Contains(err.Error(), "cycle") || !strings.Contains(err.Error(), "a.1") {
		t.Fatalf("err = %v, want a cycle naming a.1", err)
	}
}

func TestRegisterRejects(t *testing.T) {
	var r Registry
	if err := r.Register(reg("t", "x")); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		r    *Registration
		want error
	}{
		"duplicate":    {reg("t", "x"), ErrIDRegistered},
		"no type":      {reg("", "y"), ErrNoType},
		"no id":        {reg("t", ""), ErrNoPluginID},
		"all and more": {reg("t", "z", All, "u"), ErrInvalidRequires},
	} {
		if err := r.Register(tc.r); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
	if err := r.Register(&Registration{Type: "t", ID: "noinit"}); err == nil {
		t.Error("registration without InitFn accepted")
	}
}

func TestSetGetSkipsFailed(t *testing.T) {
	set := NewPluginSet()
	bad := &Plugin{Registration: reg(SnapshotPlugin, "overlayfs"), err: ErrSkipPlugin}
	good := &Plugin{Registration: reg(SnapshotPlugin, "naive"), instance: "naive"}
	if err := set.Add(bad); err != nil {
		t.Fatal(err)
	}
	if err := set.Add(good); err != nil {
		t.Fatal(err)
	}
	if err := set.Add(good); !errors.Is(err, ErrPluginInitialized) {
		t.Fatalf("second add: %v", err)
	}
	got, err := set.Get(SnapshotPlugin)
	if err != nil || got != "naive" {
		t.Fatalf("Get = %v, %v; want the plugin that loaded", got, err)
	}
	if _, err := set.Get(ContentPlugin); !errors.Is(err, ErrPluginNotFound) {
		t.Fatalf("Get(missing) = %v", err)
	}
	ic := &InitContext{plugins: set}
	if _, err := ic.GetByID(SnapshotPlugin, "overlayfs"); !IsSkipPlugin(err) {
		t.Fatalf("GetByID(skipped) = %v", err)
	}
}
