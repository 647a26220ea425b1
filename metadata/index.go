package metadata

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/llitfkitfk/containerd/filters"
)

// In-memory read indexes.
//
// Lists and gets of images and containers are the daemon's most frequent
// reads (the CRI lists both every few seconds per pod; `ctr images ls` and
// image pulls read every image), and the records change rarely. Reading
// them from bolt decodes every record of the namespace on every call, so
// the DB keeps them decoded here, by namespace and name, and reads answer
// from memory.
//
// The index is kept consistent with the database, not refreshed: it is
// loaded once, when the DB opens, and every transaction that changes a
// record registers, with tx.OnCommit, the record as it now reads (decoded
// from the transaction itself, so it is what a read from bolt would give).
// bolt runs those hooks only if the transaction commits, and the commit
// queue runs every commit, hooks included, in one goroutine at a time, so
// the index sees the commits in their order, and before any writer's call
// returns: a list that starts after a write returned reflects it.
//
// Values are never changed once stored: a write stores a new one. Readers
// take the values under a read lock and use them after; the stores hand
// callers copies of their maps.

// objectIndex holds the decoded records of one kind, by namespace.
type objectIndex[T any] struct {
	mu   sync.RWMutex
	byNS map[string]*nsObjects[T]
}

// nsObjects are one namespace's records, sorted by name as bolt keeps
// them, so lists come out in the order a bolt read gave.
type nsObjects[T any] struct {
	sorted []*indexed[T]
	// wireAll is every record's encoding (see listEncoded), one after the
	// other, in name order: the answer to a list without filters, which
	// is the common one. Any change to the namespace's records clears it.
	wireAll atomic.Pointer[[]byte]
}

// indexed is one record: its decoded value, or the error decoding it gave
// (a damaged record fails the reads that meet it, as a bolt read would).
type indexed[T any] struct {
	name string
	v    T
	err  error
	// wire is what the gRPC service last encoded v as (see listEncoded);
	// set once per stored value.
	wire atomic.Pointer[[]byte]
}

func newObjectIndex[T any]() *objectIndex[T] {
	return &objectIndex[T]{byNS: map[string]*nsObjects[T]{}}
}

// load reads every namespace's records with read, in a transaction that
// sees the database as the index must start.
func (x *objectIndex[T]) load(tx *bolt.Tx, objects func(tx *bolt.Tx, ns string) *bolt.Bucket,
	read func(name string, bkt *bolt.Bucket) (T, error)) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	clear(x.byNS)
	return forEachNamespace(tx, func(ns string, _ *bolt.Bucket) error {
		bkt := objects(tx, ns)
		if bkt == nil {
			return nil
		}
		objs := &nsObjects[T]{}
		err := bkt.ForEachBucket(func(k []byte) error {
			v, err := read(string(k), bkt.Bucket(k))
			objs.sorted = append(objs.sorted, &indexed[T]{name: string(k), v: v, err: err})
			return nil
		})
		if err != nil {
			return err
		}
		if len(objs.sorted) > 0 {
			x.byNS[ns] = objs
		}
		return nil
	})
}

// find returns the position of name in objs, and whether it is there.
func (objs *nsObjects[T]) find(name string) (int, bool) {
	return slices.BinarySearchFunc(objs.sorted, name, func(e *indexed[T], name string) int {
		return strings.Compare(e.name, name)
	})
}

// put stores v as name's record once tx commits. v must not be changed
// after.
func (x *objectIndex[T]) put(tx *bolt.Tx, ns, name string, v T) {
	e := &indexed[T]{name: name, v: v}
	tx.OnCommit(func() {
		x.mu.Lock()
		defer x.mu.Unlock()
		objs := x.byNS[ns]
		if objs == nil {
			objs = &nsObjects[T]{}
			x.byNS[ns] = objs
		}
		objs.wireAll.Store(nil)
		if i, ok := objs.find(name); ok {
			objs.sorted[i] = e
		} else {
			objs.sorted = slices.Insert(objs.sorted, i, e)
		}
	})
}

// remove drops name's record once tx commits.
func (x *objectIndex[T]) remove(tx *bolt.Tx, ns, name string) {
	tx.OnCommit(func() {
		x.mu.Lock()
		defer x.mu.Unlock()
		objs := x.byNS[ns]
		if objs == nil {
			return
		}
		objs.wireAll.Store(nil)
		if i, ok := objs.find(name); ok {
			objs.sorted = slices.Delete(objs.sorted, i, i+1)
		}
		if len(objs.sorted) == 0 {
			delete(x.byNS, ns)
		}
	})
}

// get returns name's record in ns, if there is one.
func (x *objectIndex[T]) get(ns, name string) (*indexed[T], bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	objs := x.byNS[ns]
	if objs == nil {
		return nil, false
	}
	i, ok := objs.find(name)
	if !ok {
		return nil, false
	}
	return objs.sorted[i], true
}

// list returns ns's records matching filter, in name order, or the first
// decoding error met.
func (x *objectIndex[T]) list(ns string, filter filters.Filter, adapt func(*T) filters.Adaptor) ([]*indexed[T], error) {
	x.mu.RLock()
	var all []*indexed[T]
	if objs := x.byNS[ns]; objs != nil {
		all = slices.Clone(objs.sorted)
	}
	x.mu.RUnlock()

	out := all[:0]
	for _, e := range all {
		if e.err != nil {
			return nil, e.err
		}
		if filter.Match(adapt(&e.v)) {
			out = append(out, e)
		}
	}
	return out, nil
}

// listEncoded is list, answering with each record's encoding by enc,
// made once per stored value and kept with it. enc must be the same
// function on every call for a kind. Without a filter (filter nil), the
// answer is one part, all records' encodings together, also kept.
func (x *objectIndex[T]) listEncoded(ns string, filter filters.Filter, adapt func(*T) filters.Adaptor,
	enc func(*T) []byte) ([][]byte, error) {
	if filter != nil {
		list, err := x.list(ns, filter, adapt)
		if err != nil {
			return nil, err
		}
		out := make([][]byte, len(list))
		for i, e := range list {
			out[i] = e.encoded(enc)
		}
		return out, nil
	}

	// The read lock is held while the namespace's answer is made, so that
	// a change, which clears it under the write lock, cannot be missed.
	x.mu.RLock()
	defer x.mu.RUnlock()
	objs := x.byNS[ns]
	if objs == nil {
		return nil, nil
	}
	if all := objs.wireAll.Load(); all != nil {
		return [][]byte{*all}, nil
	}
	var all []byte
	for _, e := range objs.sorted {
		if e.err != nil {
			return nil, e.err
		}
		b := e.encoded(enc)
		if b == nil {
			return [][]byte{nil}, nil // enc refused it: the caller's fallback
		}
		all = append(all, b...)
	}
	all = all[:len(all):len(all)] // shared: no append may write past it
	objs.wireAll.Store(&all)
	return [][]byte{all}, nil
}

// encoded is enc(&e.v), made on first use.
func (e *indexed[T]) encoded(enc func(*T) []byte) []byte {
	if b := e.wire.Load(); b != nil {
		return *b
	}
	b := enc(&e.v)
	e.wire.Store(&b)
	return b
}
