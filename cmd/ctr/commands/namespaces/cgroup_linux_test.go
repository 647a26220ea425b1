package namespaces

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDeleteCgroup(t *testing.T) {
	saved := cgroupRoot
	defer func() { cgroupRoot = saved }()

	// v1: the namespace's directory in each hierarchy that has one.
	cgroupRoot = t.TempDir()
	for _, dir := range []string{"pids/ns1", "memory/ns1", "memory/other", "cpu"} {
		if err := os.MkdirAll(filepath.Join(cgroupRoot, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := deleteCgroup("ns1"); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", "ns1")); len(left) != 0 {
		t.Errorf("left %v", left)
	}
	if _, err := os.Stat(filepath.Join(cgroupRoot, "memory/other")); err != nil {
		t.Errorf("another namespace's cgroup went: %v", err)
	}
	// None there: not an error.
	if err := deleteCgroup("ns1"); err != nil {
		t.Fatal(err)
	}

	// Unified: the directory under the root; one with children stays,
	// and says so.
	cgroupRoot = t.TempDir()
	if err := os.WriteFile(filepath.Join(cgroupRoot, "cgroup.controllers"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(cgroupRoot, "ns2/child"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := deleteCgroup("ns2"); err == nil {
		t.Error("a cgroup with children was deleted")
	}
	if err := os.Remove(filepath.Join(cgroupRoot, "ns2/child")); err != nil {
		t.Fatal(err)
	}
	if err := deleteCgroup("ns2"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cgroupRoot, "ns2")); !os.IsNotExist(err) {
		t.Errorf("ns2 still there: %v", err)
	}
}

func TestDeleteCgroupRemovesOnlyDirectories(t *testing.T) {
	saved := cgroupRoot
	defer func() { cgroupRoot = saved }()
	cgroupRoot = t.TempDir()
	file := filepath.Join(cgroupRoot, "cgroup.controllers")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := deleteCgroup("cgroup.controllers"); err == nil {
		t.Error("no error for a control file")
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("the control file went: %v", err)
	}
}
