package snapshots

import (
	"strings"

	"github.com/llitfkitfk/containerd/snapshots"
)

// snapshotTree is the snapshots of a snapshotter by parent, in the order
// they were walked, for `snapshots tree`.
type snapshotTree struct {
	nodes []*treeNode
	index map[string]*treeNode
}

type treeNode struct {
	info     snapshots.Info
	children []string
}

func newSnapshotTree() *snapshotTree {
	return &snapshotTree{index: map[string]*treeNode{}}
}

// add records info, under its parent; a parent not yet seen gets a
// placeholder that its own info fills in when it comes.
func (t *snapshotTree) add(info snapshots.Info) {
	node, ok := t.index[info.Name]
	if !ok {
		node = &treeNode{}
		t.nodes = append(t.nodes, node)
		t.index[info.Name] = node
	}
	node.info = info
	if info.Parent == "" {
		return
	}
	parent, ok := t.index[info.Parent]
	if !ok {
		parent = &treeNode{info: snapshots.Info{Name: info.Parent}}
		t.nodes = append(t.nodes, parent)
		t.index[info.Parent] = parent
	}
	parent.children = append(parent.children, info.Name)
}

// print calls line for each snapshot, the roots first, each child under
// its parent indented two spaces a level and marked "\_", as containerd's
// ctr prints it.
func (t *snapshotTree) print(line func(string)) {
	var walk func(name string, level int)
	walk = func(name string, level int) {
		node := t.index[name]
		prefix := strings.Repeat("  ", level)
		if level > 0 {
			prefix += "\\_"
		}
		line(prefix + " " + name)
		for _, child := range node.children {
			walk(child, level+1)
		}
	}
	for _, node := range t.nodes {
		if node.info.Parent == "" {
			walk(node.info.Name, 0)
		}
	}
}
