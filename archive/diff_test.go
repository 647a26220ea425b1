package archive

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// treeState describes root for comparing trees made different ways:
// times to the second, as layers carry them.
func treeState(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		line := describe(t, root, p)
		// Drop the nanoseconds describe prints.
		if i := strings.Index(line, " mtime="); i >= 0 {
			j := strings.IndexByte(line[i:], '.')
			line = line[:i+j] + line[i+j+10:]
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// change makes upper, a copy of the lower layer, differ in every way a
// diff can carry.
func change(t *testing.T, upper string) {
	p := func(rel string) string { return filepath.Join(upper, rel) }
	must(t, os.WriteFile(p("a/y"), []byte("changed y"), 0o644))               // content and size
	must(t, os.WriteFile(p("a/new"), []byte("new"), 0o600))                   // added
	must(t, os.Remove(p("a/x")))                                              // deleted
	must(t, os.RemoveAll(p("b/deep")))                                        // deleted directory
	must(t, os.Chmod(p("b/z"), 0o4711))                                       // mode only
	must(t, os.Lchown(p("c"), 55, 66))                                        // owner only
	must(t, unix.Setxattr(p("d/old"), "user.note", []byte("hi"), 0))          // xattr only
	must(t, os.Symlink("../a/y", p("d/link")))                                // symlink
	must(t, os.Link(p("d/sub/lower"), p("d/sub/lower2")))                     // link to an unchanged file
	must(t, os.Link(p("a/new"), p("a/new2")))                                 // link to a new file
	must(t, os.RemoveAll(p("e")))                                             // directory replaced by a file
	must(t, os.WriteFile(p("e"), []byte("e is a file"), 0o644))               //
	must(t, os.Remove(p("c")))                                                // file replaced by a directory
	must(t, os.Mkdir(p("c"), 0o700))                                          //
	must(t, os.WriteFile(p("c/inside"), []byte("inside"), 0o644))             //
	must(t, unix.Mkfifo(p("fifo"), 0o600))                                    // special files
	must(t, unix.Mknod(p("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))) //
	// Same size, same whole-second mtime, different content: only a
	// content comparison sees it.
	must(t, os.WriteFile(p("p/lowerfile"), []byte("L"), 0o644))
	must(t, os.Chtimes(p("p/lowerfile"), testTime, testTime))
	// A change deep under unchanged directories brings them along.
	must(t, os.WriteFile(p("d/sub/upper"), []byte("u"), 0o644))
}

func TestWriteDiffRoundTrip(t *testing.T) {
	dir := t.TempDir()
	lower, upper, result := filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "result")
	for _, d := range []string{lower, upper, result} {
		must(t, os.Mkdir(d, 0o755))
		mustApply(t, d, lowerLayer())
	}
	change(t, upper)
	// Let everything written above reach second boundaries that differ
	// from the lower's.
	time.Sleep(10 * time.Millisecond)

	var diff bytes.Buffer
	must(t, WriteDiff(context.Background(), &diff, lower, upper))
	var again bytes.Buffer
	must(t, WriteDiff(context.Background(), &again, lower, upper))
	if !bytes.Equal(diff.Bytes(), again.Bytes()) {
		t.Error("WriteDiff is not deterministic")
	}
	if _, err := Apply(context.Background(), result, bytes.NewReader(diff.Bytes())); err != nil {
		t.Fatalf("apply diff: %v", err)
	}
	if got, want := treeState(t, result), treeState(t, upper); got != want {
		t.Errorf("lower + diff != upper\ngot:\n%s\nwant:\n%s", got, want)
	}

	// The same diff applied onto an overlay gives the same merged view.
	ovUpper, work, merged := filepath.Join(dir, "ovupper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{ovUpper, work, merged} {
		must(t, os.Mkdir(d, 0o755))
	}
	if _, err := Apply(context.Background(), ovUpper, bytes.NewReader(diff.Bytes()), WithConvertWhiteout(OverlayConvertWhiteout), WithParents([]string{lower})); err != nil {
		t.Fatalf("apply diff to overlay: %v", err)
	}
	if err := unix.Mount("overlay", merged, "overlay", 0, fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, ovUpper, work)); err != nil {
		t.Skipf("mount overlay: %v", err)
	}
	defer unix.Unmount(merged, unix.MNT_DETACH)
	// Hardlinks between lower and upper are copies in an overlay.
	strip := func(s string) string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if i := strings.Index(l, " nlink="); i >= 0 {
				l = l[:i] + l[i+len(" nlink=")+1:]
			}
			out = append(out, l)
		}
		return strings.Join(out, "\n")
	}
	if got, want := strip(treeState(t, merged)), strip(treeState(t, upper)); got != want {
		t.Errorf("overlay lower + diff != upper\ngot:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteDiffEqualTrees(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{a, b} {
		must(t, os.Mkdir(d, 0o755))
		mustApply(t, d, lowerLayer())
	}
	var diff bytes.Buffer
	must(t, WriteDiff(context.Background(), &diff, a, b))
	if diff.Len() != 1024 { // the end-of-archive marker alone
		t.Errorf("diff of equal trees is %d bytes", diff.Len())
	}
}
