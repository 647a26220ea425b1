package gc

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
)

// graph is an adjacency list keyed by node key, all in one namespace and
// of type 1.
type graph map[string][]string

func node(key string) Node { return Node{Type: 1, Namespace: "ns", Key: key} }

func (g graph) refs(n Node) ([]Node, error) {
	var out []Node
	for _, k := range g[n.Key] {
		out = append(out, node(k))
	}
	return out, nil
}

func keys(m map[Node]struct{}) []string {
	var ks []string
	for n := range m {
		ks = append(ks, n.Key)
	}
	slices.Sort(ks)
	return ks
}

func TestTricolor(t *testing.T) {
	g := graph{
		"a": {"b", "c"},
		"b": {"c", "d"},
		"c": {"a"}, // cycle back to a root
		"d": {"d"}, // self loop
		"x": {"y"}, // unreachable island
		"y": {"x"},
	}
	got, err := Tricolor([]Node{node("a"), node("e")}, g.refs)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c", "d", "e"}; !slices.Equal(keys(got), want) {
		t.Errorf("reachable = %v, want %v", keys(got), want)
	}
}

func TestTricolorNoRoots(t *testing.T) {
	got, err := Tricolor(nil, graph{"a": {"b"}}.refs)
	if err != nil || len(got) != 0 {
		t.Fatalf("Tricolor(nil) = %v, %v; want empty", got, err)
	}
}

// A long chain that loops back to its start is marked without recursion,
// each node explored once.
func TestTricolorDeepChain(t *testing.T) {
	const n = 100_000
	calls := 0
	refs := func(nd Node) ([]Node, error) {
		calls++
		var i int
		fmt.Sscan(nd.Key, &i)
		if i+1 >= n {
			return []Node{node("0")}, nil // close the loop
		}
		return []Node{node(fmt.Sprint(i + 1))}, nil
	}
	got, err := Tricolor([]Node{node("0")}, refs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Errorf("reachable = %d nodes, want %d", len(got), n)
	}
	if calls != n {
		t.Errorf("refs called %d times, want each node once (%d)", calls, n)
	}
}

func TestTricolorStripsFlags(t *testing.T) {
	const flat = 0x20
	refs := func(n Node) ([]Node, error) {
		if n.Type&flat != 0 || len(n.Key) > 1 {
			return nil, nil // flat nodes keep only themselves
		}
		return []Node{{Type: 1, Key: n.Key + "-child"}}, nil
	}
	got, err := Tricolor([]Node{{Type: 1 | flat, Key: "a"}, {Type: 1, Key: "b"}}, refs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[Node]struct{}{
		{Type: 1, Key: "a"}:       {},
		{Type: 1, Key: "b"}:       {},
		{Type: 1, Key: "b-child"}: {},
	}
	if !maps.Equal(got, want) {
		t.Errorf("reachable = %v, want %v", got, want)
	}
}

func TestTricolorError(t *testing.T) {
	errBoom := errors.New("boom")
	_, err := Tricolor([]Node{node("a")}, func(Node) ([]Node, error) { return nil, errBoom })
	if !errors.Is(err, errBoom) {
		t.Fatalf("err = %v, want %v", err, errBoom)
	}
}
