// Package gc holds the pieces of garbage collection that do not depend on
// what is being collected: the resource graph's nodes, the marking of what
// the roots reach, and the statistics a collection reports.
//
// The metadata package builds the graph from its records and sweeps what is
// left unmarked; gc/scheduler decides when that happens.
package gc

import (
	"context"
	"time"
)

// ResourceType names a kind of resource: content, snapshot, lease and so
// on. The values are defined by whoever builds the graph.
type ResourceType uint8

// ResourceMax is the largest resource type. The bits above it are free for
// a graph to tell variants of one type apart while marking (a node reached
// through a "flat" lease, say, whose references are not followed); Tricolor
// strips them from the nodes it returns.
const ResourceMax = ResourceType(0x1f)

// Node is one resource in the graph. Key is unique within a type and
// namespace: a digest, a lease id, "<snapshotter>/<key>".
type Node struct {
	Type      ResourceType
	Namespace string
	Key       string
}

// Tricolor returns every node reachable from roots, following the edges
// refs returns. The caller must keep the graph from changing until the
// result has been used to sweep.
//
// Marking is iterative, with an explicit stack of grey nodes, so a deep
// graph costs heap, not goroutine stack. Memory is proportional to the
// number of reachable nodes.
func Tricolor(roots []Node, refs func(Node) ([]Node, error)) (map[Node]struct{}, error) {
	var (
		// grey nodes are known reachable but their edges are unexplored.
		grey = append([]Node(nil), roots...)
		// seen holds the grey and black nodes, as reached, flag bits
		// included, so that each variant is explored once.
		seen = make(map[Node]struct{}, len(roots))
		// black nodes are reachable and explored; this is the result.
		black = make(map[Node]struct{}, len(roots))
	)
	for _, n := range roots {
		seen[n] = struct{}{}
	}
	for len(grey) > 0 {
		n := grey[len(grey)-1]
		grey = grey[:len(grey)-1]

		next, err := refs(n)
		if err != nil {
			return nil, err
		}
		for _, m := range next {
			if _, ok := seen[m]; !ok {
				seen[m] = struct{}{}
				grey = append(grey, m)
			}
		}

		n.Type &= ResourceMax
		black[n] = struct{}{}
	}
	return black, nil
}

// Stats describes one collection.
type Stats struct {
	// MetaD is how long metadata was locked against changes while it was
	// marked and swept: the pause other callers saw.
	MetaD time.Duration
	// ContentD is how long removing unreferenced blobs and ingests from
	// the backing content store took, if it ran.
	ContentD time.Duration
	// SnapshotD is how long cleaning up each snapshotter took, by name.
	SnapshotD map[string]time.Duration
}

// Elapsed returns the pause the collection caused, which is what a
// scheduler weighs against its pause threshold.
func (s Stats) Elapsed() time.Duration { return s.MetaD }

// Scheduler runs collections on request. A synchronous delete asks it for a
// collection that starts after the delete and waits for its outcome.
type Scheduler interface {
	ScheduleAndWait(ctx context.Context) (Stats, error)
}
