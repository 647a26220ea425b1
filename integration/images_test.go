//go:build integration

package integration

import (
	"fmt"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// humanBytes is how ctr's images commands print sizes.
func humanBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

// imageLine returns the `images ls` line of name, or "".
func imageLine(ls, name string) string {
	for _, line := range strings.Split(ls, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return line
		}
	}
	return ""
}

func TestCtrImages(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	dir := t.TempDir()
	const name = "docker.io/library/ctrtest:v1"
	img := buildOCIArchive(t, dir, name, map[string]string{
		"etc/hello":      "hello\n",
		"usr/bin/tool":   strings.Repeat("#", 5000),
		"var/lib/x/data": "data",
	})

	d.ctr("images", "import", "--no-unpack", img.path)

	ls := d.ctr("images", "ls")
	line := imageLine(ls, name)
	if line == "" {
		t.Fatalf("images ls lacks %s:\n%s", name, ls)
	}
	for _, want := range []string{img.manifest.Digest.String(), img.manifest.MediaType, humanBytes(img.size), "linux/" + runtime.GOARCH} {
		if !strings.Contains(line, want) {
			t.Errorf("images ls line lacks %q: %q", want, line)
		}
	}
	if q := d.ctr("images", "ls", "-q"); strings.TrimSpace(q) != name {
		t.Fatalf("images ls -q:\n%s", q)
	}
	// The blobs came in through the content service.
	cls := d.ctr("content", "ls", "-q")
	for _, desc := range []string{img.manifest.Digest.String(), img.config.Digest.String(), img.layer.Digest.String()} {
		if !strings.Contains(cls, desc) {
			t.Errorf("content ls lacks %s:\n%s", desc, cls)
		}
	}

	checkImage(t, d, name, "complete (2/2)")

	d.ctr("images", "label", name, "k=v")
	if line := imageLine(d.ctr("images", "ls"), name); !strings.Contains(line, "k=v") {
		t.Fatalf("label not listed: %q", line)
	}

	const tagged = "example.com/ctrtest:copy"
	d.ctr("images", "tag", name, tagged)
	ls = d.ctr("images", "ls")
	if line := imageLine(ls, tagged); !strings.Contains(line, img.manifest.Digest.String()) {
		t.Fatalf("tag not listed with the same target:\n%s", ls)
	}
	if out, err := d.ctrErr("images", "tag", name, tagged); err == nil || !strings.Contains(out, "already exists") {
		t.Fatalf("tagging over an existing image: %v\n%s", err, out)
	}

	if ls := d.ctr("-n", "elsewhere", "images", "ls", "-q"); strings.TrimSpace(ls) != "" {
		t.Fatalf("another namespace lists images:\n%s", ls)
	}

	// Export, and import into a fresh daemon: the same manifest, named the
	// same.
	out := filepath.Join(dir, "out.tar")
	d.ctr("images", "export", out, name)
	idx := readArchiveIndex(t, out)
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != img.manifest.Digest {
		t.Fatalf("exported index %+v, want manifest %s", idx.Manifests, img.manifest.Digest)
	}
	fresh := newDaemon(t, "")
	fresh.start()
	fresh.ctr("images", "import", "--no-unpack", out)
	if line := imageLine(fresh.ctr("images", "ls"), name); !strings.Contains(line, img.manifest.Digest.String()) {
		t.Fatalf("re-imported image: %q", line)
	}
	checkImage(t, fresh, name, "complete (2/2)")

	// A missing layer shows in check.
	d.ctr("content", "rm", img.layer.Digest.String())
	checkImage(t, d, name, "incomplete (1/2)")

	d.ctr("images", "rm", tagged)
	if ls := d.ctr("images", "ls", "-q"); strings.Contains(ls, tagged) || !strings.Contains(ls, name) {
		t.Fatalf("images ls after rm %s:\n%s", tagged, ls)
	}
	d.ctr("images", "rm", "--sync", name)
	if ls := d.ctr("images", "ls", "-q"); strings.TrimSpace(ls) != "" {
		t.Fatalf("images ls after removing all:\n%s", ls)
	}
	if out, _ := d.ctrErr("images", "rm", name); !strings.Contains(out, "not found") {
		t.Fatalf("removing a removed image:\n%s", out)
	}
	// With the image gone, sync removal collected what only it referenced.
	if cls := d.ctr("content", "ls", "-q"); strings.Contains(cls, img.manifest.Digest.String()) {
		t.Errorf("manifest still stored after images rm --sync:\n%s", cls)
	}
}

// checkImage runs `ctr images check` and wants name's status. ctr also
// asks whether the image is unpacked, which fails when no snapshotter
// answers; only the content check is this test's business.
func checkImage(t *testing.T, d *daemon, name, status string) {
	t.Helper()
	out, err := d.ctrErr("images", "check")
	line := imageLine(out, name)
	if !strings.Contains(line, status) {
		t.Fatalf("images check: %v, want %q for %s:\n%s\ndaemon log:\n%s", err, status, name, out, d.log)
	}
	if err != nil && !strings.Contains(out, "unpack") {
		t.Fatalf("images check: %v\n%s", err, out)
	}
}

func TestCtrEventsImageCreate(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	const name = "docker.io/library/evtest:v1"
	img := buildOCIArchive(t, t.TempDir(), name, map[string]string{"f": "x"})
	d.ctr("images", "import", "--no-unpack", img.path)
	i := 0
	d.awaitEvent(func(line string) bool {
		return strings.Contains(line, "/images/create") && regexp.MustCompile(`"name":"example.com/ev:\d+"`).MatchString(line)
	}, func() {
		i++
		d.ctr("images", "tag", name, "example.com/ev:"+strconv.Itoa(i))
	})
}
