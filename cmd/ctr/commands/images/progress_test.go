package images

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/remotes"
	"github.com/llitfkitfk/containerd/transfer"
)

const (
	manifestDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	layerDigest    = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

// pullReports is what a daemon reports for a pull of one layer.
func pullReports() []transfer.Progress {
	root := &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: manifestDigest}
	return []transfer.Progress{
		{Event: "Resolving from OCI Registry (example.com/app:v1)"},
		{Event: "Pulling from OCI Registry (example.com/app:v1)"},
		{Event: "fetching image content", Name: "example.com/app:v1", Desc: root},
		{Event: "waiting", Name: "layer-" + layerDigest, Parents: []string{"example.com/app:v1"}},
		{Event: "downloading", Name: "layer-" + layerDigest, Parents: []string{"example.com/app:v1"}, Progress: 512, Total: 1024},
		{Event: "downloading", Name: "layer-" + layerDigest, Parents: []string{"example.com/app:v1"}, Progress: 1024, Total: 1024},
		{Event: "complete", Name: "layer-" + layerDigest, Parents: []string{"example.com/app:v1"}, Progress: 1024, Total: 1024},
		{Event: "Completed pull from OCI Registry (example.com/app:v1)"},
	}
}

// Not on a terminal: a line per change of status or item state, never
// one per byte count, then the totals.
func TestPlainProgress(t *testing.T) {
	var out bytes.Buffer
	f, done := ProgressHandler(context.Background(), &out)
	for _, p := range pullReports() {
		f(p)
	}
	done()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{
		"Resolving from OCI Registry (example.com/app:v1)",
		"Pulling from OCI Registry (example.com/app:v1)",
		"example.com/app:v1\tfetching image content",
		"layer (222222222222)\twaiting",
		"layer (222222222222)\tdownloading",
		"layer (222222222222)\tcomplete",
		"Completed pull from OCI Registry (example.com/app:v1)",
	}
	if len(lines) != len(want)+1 {
		t.Fatalf("output:\n%s", out.String())
	}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("line %d is %q, want %q", i, lines[i], w)
		}
	}
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "elapsed: ") || !strings.Contains(last, "total:  1.0 Ki\t") {
		t.Errorf("status line %q", last)
	}
	if strings.Contains(out.String(), "\x1b") {
		t.Error("escape sequences in plain output")
	}
}

// On a terminal: containerd 2.x's tree, the child indented under its
// parent with a bar and its bytes, the root's descriptor, the status line.
func TestRenderTree(t *testing.T) {
	tree := newProgressTree()
	for _, p := range pullReports()[:5] {
		tree.add(p)
	}
	var out bytes.Buffer
	tree.render(&out, tree.start.Add(2*time.Second))
	lines := strings.Split(out.String(), "\n")
	if len(lines) != 5 || lines[4] != "" {
		t.Fatalf("render:\n%s", out.String())
	}
	if want := "example.com/app:v1                      \tfetching image content\t"; lines[0] != want {
		t.Errorf("root line %q, want %q", lines[0], want)
	}
	halfBar := "|\x1b[32m" + strings.Repeat("+", 19) + "\x1b[0m" + strings.Repeat("-", 19) + "|"
	// Widths count runes, as in containerd's ctr: the name is padded to
	// 40 columns, the bytes done to 8.
	if want := "└──layer (222222222222)" + strings.Repeat(" ", 17) + "\tdownloading\t" + halfBar + "\t 512.0 B/1.0 KiB\t"; lines[1] != want {
		t.Errorf("child line\n%q, want\n%q", lines[1], want)
	}
	if want := ocispec.MediaTypeImageIndex + " " + manifestDigest; lines[2] != want {
		t.Errorf("descriptor line %q", lines[2])
	}
	// containerd's ctr prints the total with %7.6v, which cuts it to six
	// characters.
	if want := "Pulling from OCI Registry (example.com/app:v1)\telapsed: 2.0 s\ttotal:  512.0 \t(256.0 B/s)\t"; lines[3] != want {
		t.Errorf("status line\n%q, want\n%q", lines[3], want)
	}
}

// A parent reported after its child adopts it: the child is no longer a
// root.
func TestTreeLateParent(t *testing.T) {
	tree := newProgressTree()
	tree.add(transfer.Progress{Event: "waiting", Name: "child"})
	tree.add(transfer.Progress{Event: "resolving", Name: "parent"})
	tree.add(transfer.Progress{Event: "downloading", Name: "child", Parents: []string{"parent"}})
	if len(tree.roots) != 1 || tree.roots[0].Name != "parent" || len(tree.roots[0].children) != 1 {
		t.Fatalf("roots %+v", tree.roots)
	}
	// Reporting the parent again does not add the child twice.
	tree.add(transfer.Progress{Event: "downloading", Name: "child", Parents: []string{"parent"}})
	if len(tree.roots[0].children) != 1 {
		t.Fatalf("children %d", len(tree.roots[0].children))
	}
}

// The terminal display replaces its last screen: as many lines cleared
// as were drawn, wrapped ones counted.
func TestRedraw(t *testing.T) {
	var out bytes.Buffer
	d := &redrawer{w: &out, width: func() int { return 10 }}
	d.draw([]byte("short\n" + strings.Repeat("x", 25) + "\n"))
	if d.lines != 4 { // 1 + 3 wrapped
		t.Fatalf("%d lines counted, want 4", d.lines)
	}
	out.Reset()
	d.draw([]byte("next\n"))
	if got := strings.Count(out.String(), "\x1b[1A\x1b[2K\r"); got != 4 {
		t.Fatalf("%d lines cleared, want 4: %q", got, out.String())
	}
	if !strings.HasSuffix(out.String(), "next\n") {
		t.Fatalf("output %q", out.String())
	}
}

func TestScreenLines(t *testing.T) {
	for _, c := range []struct {
		text  string
		width int
		want  int
	}{
		{"a\nb\n", 80, 2},
		{strings.Repeat("x", 8) + "\n", 8, 1}, // filling the row does not wrap
		{strings.Repeat("x", 9) + "\n", 8, 2}, // printing past it does
		{strings.Repeat("x", 17) + "\n", 8, 3},
		{"a\tb\n", 8, 1},                        // a tab stops at the last column
		{"abc\t\t\t\n", 8, 1},                   // trailing tabs never wrap
		{"a\tbcdefghi\n", 8, 2},                 // b in the last column, the rest below
		{"|\x1b[32m+++\x1b[0m---|\n", 8, 1},     // escapes take no room
		{strings.Repeat("é", 10) + "\n", 10, 1}, // runes, not bytes
		{"anything\n", 0, 0},                    // unknown width: clear nothing
		{"└──layer (222222222222)" + strings.Repeat(" ", 17) + "\n", 40, 1}, // box drawing is one column
	} {
		if got := screenLines(c.text, c.width); got != c.want {
			t.Errorf("screenLines(%q, %d) = %d, want %d", c.text, c.width, got, c.want)
		}
	}
}

// Terminal mode draws the final state when done, even between ticks.
func TestTerminalProgressDone(t *testing.T) {
	var out bytes.Buffer
	f, done := terminalProgress(context.Background(), &out, func() int { return 200 })
	for _, p := range pullReports() {
		f(p)
	}
	done()
	s := out.String()
	if i := strings.LastIndex(s, "Completed pull from OCI Registry (example.com/app:v1)\telapsed:"); i < 0 {
		t.Fatalf("final status not drawn:\n%q", s)
	}
	if !strings.Contains(s, "complete") {
		t.Fatalf("final item state not drawn:\n%q", s)
	}
}

// fakeStatusStore is a content store's view for fetchProgress: active
// ingests by ref and the digests it has.
type fakeStatusStore struct {
	content.Store
	mu     sync.Mutex
	active []content.Status
	have   map[digest.Digest]bool
}

func (f *fakeStatusStore) ListStatuses(context.Context, ...string) ([]content.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]content.Status(nil), f.active...), nil
}

func (f *fakeStatusStore) Info(_ context.Context, d digest.Digest) (content.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.have[d] {
		return content.Info{Digest: d}, nil
	}
	return content.Info{}, errdefs.ErrNotFound
}

// A client-side fetch reports each descriptor waiting, downloading with
// the ingest's bytes, then complete, under the image's name.
func TestFetchProgress(t *testing.T) {
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: layerDigest, Size: 1000}
	key := remotes.MakeRefKey(context.Background(), layer)
	cs := &fakeStatusStore{have: map[digest.Digest]bool{}}
	var (
		mu      sync.Mutex
		reports []transfer.Progress
	)
	pf := func(p transfer.Progress) {
		mu.Lock()
		reports = append(reports, p)
		mu.Unlock()
	}
	handler, stop := fetchProgress(context.Background(), cs, "example.com/app:v1", pf)
	fp := func() *transfer.Progress {
		mu.Lock()
		defer mu.Unlock()
		for i := len(reports) - 1; i >= 0; i-- {
			if reports[i].Name == key {
				return &reports[i]
			}
		}
		return nil
	}
	waitFor := func(event string) *transfer.Progress {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if p := fp(); p != nil && p.Event == event {
				return p
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("no %q report for the layer; last %+v", event, fp())
		return nil
	}
	if _, err := handler(context.Background(), layer); err != nil {
		t.Fatal(err)
	}
	if p := waitFor("waiting"); len(p.Parents) != 1 || p.Parents[0] != "example.com/app:v1" {
		t.Fatalf("parents %v", p.Parents)
	}
	cs.mu.Lock()
	cs.active = []content.Status{{Ref: key, Offset: 400, Total: 1000}}
	cs.mu.Unlock()
	if p := waitFor("downloading"); p.Progress != 400 || p.Total != 1000 {
		t.Fatalf("downloading %d/%d", p.Progress, p.Total)
	}
	cs.mu.Lock()
	cs.active = nil
	cs.have[layer.Digest] = true
	cs.mu.Unlock()
	stop() // reports the last state itself
	if p := fp(); p.Event != "complete" || p.Progress != 1000 {
		t.Fatalf("last report %+v", p)
	}
	mu.Lock()
	if reports[0].Name != "example.com/app:v1" {
		t.Errorf("first report %+v, want the image", reports[0])
	}
	n := len(reports)
	mu.Unlock()
	time.Sleep(3 * fetchPollEvery)
	mu.Lock()
	defer mu.Unlock()
	if len(reports) != n {
		t.Fatalf("reports after stop: %+v", reports[n:])
	}
}
