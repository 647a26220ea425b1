package mount

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseOptions(t *testing.T) {
	flags, data, prop := parseOptions([]string{"ro", "rbind", "nosuid", "lowerdir=/a:/b", "rprivate", "index=off"})
	if flags != unix.MS_RDONLY|unix.MS_BIND|unix.MS_REC|unix.MS_NOSUID {
		t.Errorf("flags = %#x", flags)
	}
	if data != "lowerdir=/a:/b,index=off" {
		t.Errorf("data = %q", data)
	}
	if prop != unix.MS_PRIVATE|unix.MS_REC {
		t.Errorf("propagation = %#x", prop)
	}
	if f, _, _ := parseOptions([]string{"ro", "rw"}); f&unix.MS_RDONLY != 0 {
		t.Error("rw after ro left the mount read-only")
	}
}

func TestReadOnlyBindMount(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := WithTempMount(context.Background(), []Mount{{Type: "bind", Source: src, Options: []string{"rbind", "ro"}}}, func(root string) error {
		if b, err := os.ReadFile(filepath.Join(root, "f")); err != nil || string(b) != "x" {
			t.Errorf("read through bind mount: %q, %v", b, err)
		}
		if err := os.WriteFile(filepath.Join(root, "g"), nil, 0o644); err == nil {
			t.Error("wrote through a read-only mount")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(src, "g")); err == nil {
		t.Fatal("write reached the source")
	}
}

func TestOverlayMount(t *testing.T) {
	dir := t.TempDir()
	lower, upper, work := filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	for _, d := range []string{lower, upper, work} {
		os.Mkdir(d, 0o755)
	}
	os.WriteFile(filepath.Join(lower, "base"), []byte("lower"), 0o644)
	m := Mount{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + lower, "upperdir=" + upper, "workdir=" + work,
	}}
	err := WithTempMount(context.Background(), []Mount{m}, func(root string) error {
		if b, _ := os.ReadFile(filepath.Join(root, "base")); string(b) != "lower" {
			t.Errorf("lower file not visible: %q", b)
		}
		return os.WriteFile(filepath.Join(root, "new"), []byte("upper"), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(upper, "new")); string(b) != "upper" {
		t.Fatalf("write did not land in upperdir: %q", b)
	}
}
