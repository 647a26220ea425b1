package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveBinaries(t *testing.T) {
	dir := t.TempDir()
	touch := func(p string) string {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ours := touch("bin/containerd")

	// Without containerd 2.x beside ours, the error says how to get it.
	if _, _, _, err := resolveBinaries(ours, "", "", true); err == nil || !strings.Contains(err.Error(), "make test-deps") {
		t.Errorf("no containerd2 beside -ours: err = %v, want one naming make test-deps", err)
	}
	c2 := touch("bin/containerd2/containerd")
	c16 := touch("usr/bin/containerd")

	o, th, d, err := resolveBinaries(ours, "", c16, true)
	if err != nil || o != ours || th != c2 || d != c16 {
		t.Errorf("defaults = %q, %q, %q, %v; want %q, %q, %q", o, th, d, err, ours, c2, c16)
	}
	// -distro '' leaves 1.6 out.
	if _, _, d, err := resolveBinaries(ours, "", "", true); err != nil || d != "" {
		t.Errorf("-distro '': distro = %q, %v; want none", d, err)
	}
	// A binary compared with itself is refused.
	if _, _, _, err := resolveBinaries(ours, ours, "", true); err == nil {
		t.Error("-theirs = -ours: no error")
	}
	if _, _, _, err := resolveBinaries(ours, c2, c2, true); err == nil {
		t.Error("-distro = -theirs: no error")
	}
	if _, _, _, err := resolveBinaries(ours, "", filepath.Join(dir, "missing"), true); err == nil {
		t.Error("-distro that does not exist: no error")
	}
	if _, _, _, err := resolveBinaries("", c2, "", true); err == nil {
		t.Error("no -ours: no error")
	}
}
