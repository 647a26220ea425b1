package images

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/llitfkitfk/containerd/cmd/ctr/commands"

	"github.com/containerd/console"

	"github.com/llitfkitfk/containerd/transfer"
)

// ProgressHandler shows a transfer's progress on out until done is
// called: on a terminal, containerd 2.x's tree of what is transferred
// with progress bars, redrawn in place; elsewhere (a log, a pipe) a line
// each time the transfer's status or an item's state changes, and the
// time, bytes and rate at the end. done draws the last state and returns once it
// is written.
func ProgressHandler(ctx context.Context, out io.Writer) (transfer.ProgressFunc, func()) {
	if f, ok := out.(*os.File); ok {
		if c, err := console.ConsoleFromFile(f); err == nil {
			width := func() int {
				if ws, err := c.Size(); err == nil {
					return int(ws.Width)
				}
				return 0
			}
			// A terminal of unknown width (a pty nobody sized) cannot be
			// redrawn in place: each screen would pile up under the last.
			if width() > 0 {
				return terminalProgress(ctx, out, width)
			}
		}
	}
	return plainProgress(out)
}

// progressTree is what a transfer reported: the overall status and a tree
// of items (the image, its manifests, their layers) by name.
type progressTree struct {
	start  time.Time
	status string
	nodes  map[string]*progressNode
	roots  []*progressNode
}

type progressNode struct {
	transfer.Progress
	children []*progressNode
	root     bool
}

func newProgressTree() *progressTree {
	return &progressTree{start: time.Now(), nodes: map[string]*progressNode{}}
}

// add records p and reports whether it changed the status or an item's
// event (not just its byte count).
func (t *progressTree) add(p transfer.Progress) (changed bool) {
	if p.Name == "" {
		changed = p.Event != t.status
		t.status = p.Event
		return changed
	}
	n, ok := t.nodes[p.Name]
	if !ok {
		n = &progressNode{root: true}
		t.nodes[p.Name] = n
		changed = true
	} else {
		changed = n.Event != p.Event
	}
	// Parents named before they were reported are left out; a node under
	// a known parent is no longer a root.
	var parents []string
	for _, name := range p.Parents {
		parent, ok := t.nodes[name]
		if !ok || parent == n {
			continue
		}
		parents = append(parents, name)
		if !parent.hasChild(n) {
			parent.children = append(parent.children, n)
		}
	}
	p.Parents = parents
	n.Progress = p
	switch {
	case len(parents) > 0 && n.root:
		n.root = false
		t.removeRoot(n)
	case !ok && n.root:
		t.roots = append(t.roots, n)
	}
	return changed
}

func (n *progressNode) hasChild(c *progressNode) bool {
	for _, x := range n.children {
		if x == c {
			return true
		}
	}
	return false
}

func (t *progressTree) removeRoot(n *progressNode) {
	for i, r := range t.roots {
		if r == n {
			t.roots = append(t.roots[:i], t.roots[i+1:]...)
			return
		}
	}
}

// mainDesc is the first descriptor of the node or its descendants.
func (n *progressNode) mainDesc() *transfer.Progress {
	if n.Desc != nil {
		return &n.Progress
	}
	for _, c := range n.children {
		if d := c.mainDesc(); d != nil {
			return d
		}
	}
	return nil
}

// render writes the tree as containerd 2.x's ctr draws it: a line per
// item, indented under its parent, with a bar for those moving bytes; the
// root's descriptor; and the status line.
func (t *progressTree) render(w io.Writer, now time.Time) {
	total := renderNodes(w, "", t.roots)
	for _, r := range t.roots {
		if p := r.mainDesc(); p != nil {
			fmt.Fprintf(w, "%s %s\n", p.Desc.MediaType, p.Desc.Digest)
		}
	}
	t.renderStatus(w, total, now)
}

func (t *progressTree) renderStatus(w io.Writer, total int64, now time.Time) {
	fmt.Fprintf(w, "%s\t", t.status)
	t.renderTotals(w, total, now)
}

// renderTotals is the status line without the status: the time taken,
// the bytes moved and the rate, in containerd's ctr's format.
func (t *progressTree) renderTotals(w io.Writer, total int64, now time.Time) {
	elapsed := now.Sub(t.start)
	fmt.Fprintf(w, "elapsed: %-4.1fs\ttotal: %7.6s\t(%s)\t\n", elapsed.Seconds(), commands.HumanBytes(total), bytesPerSecond(total, elapsed))
}

func (t *progressTree) totalBytes() int64 {
	var total int64
	for _, n := range t.nodes {
		total += n.Progress.Progress
	}
	return total
}

func renderNodes(w io.Writer, prefix string, nodes []*progressNode) int64 {
	var total int64
	for i, n := range nodes {
		total += n.Progress.Progress
		branch, childPrefix := "├──", "│  "
		if i == len(nodes)-1 {
			branch, childPrefix = "└──", "   "
		}
		if n.root {
			branch, childPrefix = "", ""
		}
		name := prefix + branch + displayName(n.Name)
		switch n.Event {
		case "downloading", "uploading", "extracting":
			var b bar
			if n.Total > 0 {
				b = bar(float64(n.Progress.Progress) / float64(n.Total))
			}
			fmt.Fprintf(w, "%-40.40s\t%-11s\t%s\t%8.8s/%s\t\n", name, n.Event, b.render(40), commands.HumanBytes(n.Progress.Progress), commands.HumanBytes(n.Total))
		case "resolving", "waiting":
			fmt.Fprintf(w, "%-40.40s\t%-11s\t%s\t\n", name, n.Event, bar(0).render(40))
		case "complete", "extracted":
			fmt.Fprintf(w, "%-40.40s\t%-11s\t%s\t\n", name, n.Event, bar(1).render(40))
		default:
			fmt.Fprintf(w, "%-40.40s\t%s\t\n", name, n.Event)
		}
		total += renderNodes(w, prefix+childPrefix, n.children)
	}
	return total
}

// displayName shortens the digests in a name ("layer-sha256:…") to
// their first 12 hex digits, as containerd 2.x's ctr.
func displayName(name string) string {
	parts := strings.Split(name, "-")
	for i, p := range parts {
		if strings.HasPrefix(p, "sha256:") && len(p) == len("sha256:")+64 {
			parts[i] = "(" + p[7:19] + ")"
		}
	}
	return strings.Join(parts, " ")
}

// bar is a fraction done, drawn as |+++---| in a given width with the
// done part in green.
type bar float64

func (b bar) render(width int) string {
	f := min(max(float64(b), 0), 1)
	inner := width - 2
	done := int(float64(inner) * f)
	return "|\x1b[32m" + strings.Repeat("+", done) + "\x1b[0m" + strings.Repeat("-", inner-done) + "|"
}

func bytesPerSecond(n int64, d time.Duration) string {
	if d <= 0 {
		return commands.HumanBytes(0) + "/s"
	}
	return commands.HumanBytes(int64(float64(n)/d.Seconds())) + "/s"
}

// plainProgress writes a line per change and the totals at the end.
func plainProgress(out io.Writer) (transfer.ProgressFunc, func()) {
	var mu sync.Mutex
	t := newProgressTree()
	f := func(p transfer.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if !t.add(p) {
			return
		}
		if p.Name == "" {
			fmt.Fprintln(out, p.Event)
		} else {
			fmt.Fprintf(out, "%s\t%s\n", displayName(p.Name), p.Event)
		}
	}
	done := func() {
		mu.Lock()
		defer mu.Unlock()
		// The status was printed as it came; the totals end the output.
		if len(t.nodes) > 0 || t.status != "" {
			t.renderTotals(out, t.totalBytes(), time.Now())
		}
	}
	return f, done
}

// terminalProgress redraws the tree in place, at most every redrawEvery.
func terminalProgress(ctx context.Context, out io.Writer, width func() int) (transfer.ProgressFunc, func()) {
	var (
		mu    sync.Mutex
		t     = newProgressTree()
		dirty bool
		d     = &redrawer{w: out, width: width}
	)
	f := func(p transfer.Progress) {
		mu.Lock()
		t.add(p)
		dirty = true
		mu.Unlock()
	}
	draw := func() {
		mu.Lock()
		defer mu.Unlock()
		if !dirty {
			return
		}
		dirty = false
		var buf bytes.Buffer
		t.render(&buf, time.Now())
		d.draw(buf.Bytes())
	}
	ctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(redrawEvery)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				draw()
			case <-ctx.Done():
				return
			}
		}
	}()
	done := func() {
		cancel()
		<-stopped
		mu.Lock()
		dirty = true
		mu.Unlock()
		draw()
	}
	return f, done
}

const redrawEvery = 100 * time.Millisecond

// redrawer replaces what it drew last with a new screen.
type redrawer struct {
	w     io.Writer
	width func() int
	lines int
}

func (d *redrawer) draw(screen []byte) {
	var buf bytes.Buffer
	for i := 0; i < d.lines; i++ {
		buf.WriteString("\x1b[1A\x1b[2K\r") // up a line and clear it
	}
	buf.Write(screen)
	d.w.Write(buf.Bytes())
	d.lines = screenLines(string(screen), d.width())
}

// screenLines is how many terminal rows text takes at width columns,
// counting wrapped lines; 0 when the width is unknown, so that nothing is
// cleared rather than too much.
func screenLines(text string, width int) int {
	if width <= 0 {
		return 0
	}
	lines := 0
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		lines += rows(l, width)
	}
	return lines
}

// rows is how many rows a terminal of width columns takes to show l: a
// rune takes a column, wrapping to the next row when printed past the
// last; a tab moves to the next multiple of 8 but, as in a terminal, never
// past the last column, so it does not wrap; escape sequences take none.
func rows(l string, width int) int {
	n, col := 1, 0
	inEscape := false
	for _, r := range l {
		switch {
		case inEscape:
			if r >= '@' && r <= '~' && r != '[' {
				inEscape = false
			}
		case r == '\x1b':
			inEscape = true
		case r == '\t':
			col = min(col+8-col%8, width-1)
		case r == '\r':
			col = 0
		default:
			if col >= width {
				n++
				col = 0
			}
			col++
		}
	}
	return n
}
