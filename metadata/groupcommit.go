package metadata

import (
	"errors"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Group commit.
//
// bolt runs one write transaction at a time, and each commit waits for two
// syncs: the new pages, then the meta page that makes them current. With N
// clients writing at once, the last in line waits for N commits, 2N syncs,
// though none of their changes conflict. So writes queue here instead, and
// whoever finds no transaction running commits everything queued in one:
// while it commits, new calls queue behind it, and when it is done the
// first of them commits the lot. A lone writer commits at once, as before;
// under load, N writers pay about one commit between them. Nothing waits on
// a timer, unlike bolt's own Batch (10 ms by default).
//
// What a crash may lose does not change: a call returns only after the
// transaction holding its change has committed, syncs included.
//
// The catch is failure. Calls in one transaction are all-or-nothing, but a
// call that fails must fail alone: its partial changes are rolled back with
// the whole transaction, it gets its error, and the others are run again
// without it. That is why Update's fn may run more than once. Its error is
// the one a serial run would give: it saw exactly the changes of the calls
// before it in the transaction that commits. Calls whose fn acts outside
// the database (a backing snapshotter, an ingest file) cannot be rerun;
// they commit in a transaction of their own, in turn with the others.
//
// Every commit, hooks registered with tx.OnCommit included, runs in the one
// goroutine leading at the time, so the hooks see commits in their order:
// the in-memory indexes rely on it.

// maxBatch bounds the calls in one transaction, so that one call's failure
// reruns a bounded number of others.
const maxBatch = 256

// commitQueue runs the DB's write transactions, batching concurrent ones.
type commitQueue struct {
	mu      sync.Mutex
	waiting []*commitCall
	leading bool // a goroutine is committing; waiting calls are its to run
}

// A commitCall is one Update waiting for its commit.
type commitCall struct {
	fn    func(*bolt.Tx) error
	alone bool
	err   error
	// wake says true when the call is done, false when its goroutine is
	// to lead the next commit.
	wake chan bool
}

// errCallFailed rolls back a transaction one of whose calls failed.
var errCallFailed = errors.New("a batched call failed")

// run commits fn, alone in its transaction or with what else is waiting,
// and returns its error or the commit's.
func (q *commitQueue) run(db *bolt.DB, fn func(*bolt.Tx) error, alone bool) error {
	c := &commitCall{fn: fn, alone: alone, wake: make(chan bool, 1)}
	q.mu.Lock()
	q.waiting = append(q.waiting, c)
	if q.leading {
		q.mu.Unlock()
		if done := <-c.wake; done {
			return c.err
		}
		q.mu.Lock() // handed the lead: c is first in line
	}
	q.leading = true
	batch := q.take()
	q.mu.Unlock()

	commitBatch(db, batch)

	for _, b := range batch {
		if b != c {
			b.wake <- true
		}
	}
	q.mu.Lock()
	if len(q.waiting) > 0 {
		q.waiting[0].wake <- false
	} else {
		q.leading = false
	}
	q.mu.Unlock()
	return c.err
}

// take removes the next transaction's calls from the front of the line:
// one that must run alone, or up to maxBatch that may share.
func (q *commitQueue) take() []*commitCall {
	n := 1
	if !q.waiting[0].alone {
		for n < len(q.waiting) && n < maxBatch && !q.waiting[n].alone {
			n++
		}
	}
	batch := make([]*commitCall, n)
	copy(batch, q.waiting)
	q.waiting = append(q.waiting[:0], q.waiting[n:]...)
	return batch
}

// commitBatch runs the calls in one transaction, setting each one's err.
// A call that fails is taken out with its error and the rest rerun, until
// a transaction commits or no call is left.
func commitBatch(db *bolt.DB, batch []*commitCall) {
	for len(batch) > 0 {
		failed := -1
		err := db.Update(func(tx *bolt.Tx) error {
			for i, c := range batch {
				if err := c.fn(tx); err != nil {
					c.err, failed = err, i
					return errCallFailed
				}
			}
			return nil
		})
		if failed < 0 {
			for _, c := range batch {
				c.err = err // nil, or the commit's own failure
			}
			return
		}
		batch = append(batch[:failed:failed], batch[failed+1:]...)
	}
}
