package mount

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestCompactLowerdir(t *testing.T) {
	for _, tc := range []struct {
		in      []string
		dir     string
		options []string
	}{
		{
			in:      []string{"index=off", "workdir=/r/s/3/work", "upperdir=/r/s/3/fs", "lowerdir=/r/s/2/fs:/r/s/1/fs"},
			dir:     "/r/s",
			options: []string{"index=off", "workdir=/r/s/3/work", "upperdir=/r/s/3/fs", "lowerdir=2/fs:1/fs"},
		},
		{
			in:      []string{"lowerdir=/r/s/1/fs"},
			dir:     "/r/s/1",
			options: []string{"lowerdir=fs"},
		},
		{
			in:      []string{"lowerdir=/a/x:/b/y"},
			options: []string{"lowerdir=/a/x:/b/y"},
		},
		{
			in:      []string{"lowerdir=rel/x:/b/y"},
			options: []string{"lowerdir=rel/x:/b/y"},
		},
		{
			in:      []string{"ro"},
			options: []string{"ro"},
		},
	} {
		dir, options := compactLowerdir(tc.in)
		if dir != tc.dir || !reflect.DeepEqual(options, tc.options) {
			t.Errorf("compactLowerdir(%q) = %q, %q; want %q, %q", tc.in, dir, options, tc.dir, tc.options)
		}
	}
}

// TestMountLongOverlay mounts a chain of layers whose absolute paths are
// well over a page.
func TestMountLongOverlay(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounting needs root")
	}
	root := filepath.Join(t.TempDir(), strings.Repeat("long-directory-name-", 5))
	const layers = 80
	var lowers []string
	for i := range layers {
		dir := filepath.Join(root, fmt.Sprint(i), "fs")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint("f", i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		lowers = append([]string{dir}, lowers...) // the newest on top
	}
	upper, work, target := filepath.Join(root, "upper"), filepath.Join(root, "work"), filepath.Join(root, "merged")
	for _, d := range []string{upper, work, target} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	options := []string{"workdir=" + work, "upperdir=" + upper, "lowerdir=" + strings.Join(lowers, ":")}
	if _, data, _ := parseOptions(options); len(data) < pageSize {
		t.Fatalf("options are only %d bytes; the test needs more than a page", len(data))
	}
	wd, _ := os.Getwd()
	if err := mountLongOverlay("overlay", target, 0, options); err != nil {
		t.Fatal(err)
	}
	defer UnmountAll(target, 0)
	if now, _ := os.Getwd(); now != wd {
		t.Errorf("working directory changed from %s to %s", wd, now)
	}
	for _, i := range []int{0, layers - 1} {
		b, err := os.ReadFile(filepath.Join(target, fmt.Sprint("f", i)))
		if err != nil || string(b) != fmt.Sprint(i) {
			t.Errorf("layer %d through the mount: %q, %v", i, b, err)
		}
	}
	if err := os.WriteFile(filepath.Join(target, "new"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(upper, "new")); err != nil {
		t.Errorf("write did not reach the upper directory: %v", err)
	}
}

func TestMountLongOverlayTooLong(t *testing.T) {
	long := "lowerdir=/a/" + strings.Repeat("x", pageSize) + ":/b/y"
	if err := mountLongOverlay("overlay", t.TempDir(), 0, []string{long}); err == nil {
		t.Fatal("mounted options longer than a page")
	}
}
