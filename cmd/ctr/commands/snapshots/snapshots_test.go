package snapshots

import (
	"strings"
	"testing"

	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/snapshots"
)

func TestTreeChildrenUnderParents(t *testing.T) {
	tree := newSnapshotTree()
	// A child walked before its parent, as a walk in key order may do.
	for _, info := range []snapshots.Info{
		{Name: "c", Parent: "b"},
		{Name: "a"},
		{Name: "b", Parent: "a"},
		{Name: "other"},
		{Name: "b2", Parent: "a"},
	} {
		tree.add(info)
	}
	var lines []string
	tree.print(func(l string) { lines = append(lines, l) })
	want := " a\n  \\_ b\n    \\_ c\n  \\_ b2\n other"
	if got := strings.Join(lines, "\n"); got != want {
		t.Errorf("tree:\n%s\nwant\n%s", got, want)
	}
}

func TestMountCommandLine(t *testing.T) {
	for _, c := range []struct {
		m    mount.Mount
		want string
	}{
		{mount.Mount{Type: "overlay", Source: "overlay", Options: []string{"workdir=/w", "upperdir=/u", "lowerdir=/l"}},
			"mount -t overlay overlay /mnt -o workdir=/w,upperdir=/u,lowerdir=/l"},
		{mount.Mount{Type: "bind", Source: "/s", Target: "sub"}, "mount -t bind /s /mnt/sub"},
	} {
		if got := mountCommandLine("/mnt", c.m); got != c.want {
			t.Errorf("mountCommandLine = %q, want %q", got, c.want)
		}
	}
}
