package metadata

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openBareDB opens a fresh DB without backing stores, for tests of its
// transactions.
func openBareDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "meta.db"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// holdCommits starts an Update that blocks inside its transaction until
// the returned release is called, so that calls made meanwhile queue up.
// waitQueued waits until n calls are queued behind it.
func holdCommits(t *testing.T, db *DB) (waitQueued func(n int), release func() error) {
	t.Helper()
	entered, unblock := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.Update(func(tx *bolt.Tx) error {
			select {
			case <-entered:
			default:
				close(entered)
			}
			<-unblock
			return nil
		})
	}()
	<-entered
	waitQueued = func(n int) {
		for {
			db.commits.mu.Lock()
			queued := len(db.commits.waiting)
			db.commits.mu.Unlock()
			if queued >= n {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	release = func() error {
		close(unblock)
		return <-done
	}
	return waitQueued, release
}

// put is an Update that writes key=value in bucket "test" and records the
// transaction it committed in.
func put(db *DB, key string, txid *int) error {
	return db.Update(func(tx *bolt.Tx) error {
		*txid = tx.ID()
		bkt, err := tx.CreateBucketIfNotExists([]byte("test"))
		if err != nil {
			return err
		}
		return bkt.Put([]byte(key), []byte("v"))
	})
}

func keys(t *testing.T, db *DB) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	err := db.View(func(tx *bolt.Tx) error {
		bkt := tx.Bucket([]byte("test"))
		if bkt == nil {
			return nil
		}
		return bkt.ForEach(func(k, _ []byte) error {
			got[string(k)] = true
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestGroupCommitSharesTransactions: writers that arrive while a commit
// runs are committed together, in one transaction, after it.
func TestGroupCommitSharesTransactions(t *testing.T) {
	db := openBareDB(t)
	waitQueued, release := holdCommits(t, db)

	const n = 16
	txids := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = put(db, fmt.Sprint("k", i), &txids[i]) })
	}
	waitQueued(n)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
		if txids[i] != txids[0] {
			t.Fatalf("queued writers committed in transactions %v, want one shared", txids)
		}
	}
	if got := keys(t, db); len(got) != n {
		t.Fatalf("committed %d keys, want %d: %v", len(got), n, got)
	}
}

// TestGroupCommitFailureIsolated: a call that fails in a shared
// transaction gets its own error, leaves none of its changes, and does not
// fail the others.
func TestGroupCommitFailureIsolated(t *testing.T) {
	db := openBareDB(t)
	waitQueued, release := holdCommits(t, db)

	boom := errors.New("boom")
	var (
		wg           sync.WaitGroup
		okErr        [4]error
		failErr      error
		txids        [4]int
		failRuns     int
		failRunsLock sync.Mutex
	)
	for i := range 2 {
		wg.Go(func() { okErr[i] = put(db, fmt.Sprint("ok", i), &txids[i]) })
	}
	waitQueued(2)
	wg.Go(func() {
		failErr = db.Update(func(tx *bolt.Tx) error {
			failRunsLock.Lock()
			failRuns++
			failRunsLock.Unlock()
			bkt, err := tx.CreateBucketIfNotExists([]byte("test"))
			if err != nil {
				return err
			}
			if err := bkt.Put([]byte("failed"), []byte("v")); err != nil {
				return err
			}
			return boom
		})
	})
	waitQueued(3)
	for i := 2; i < 4; i++ {
		wg.Go(func() { okErr[i] = put(db, fmt.Sprint("ok", i), &txids[i]) })
	}
	waitQueued(5)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	if !errors.Is(failErr, boom) {
		t.Fatalf("failing call returned %v, want its own error", failErr)
	}
	if failRuns != 1 {
		t.Fatalf("failing call ran %d times, want once", failRuns)
	}
	for i, err := range okErr {
		if err != nil {
			t.Fatalf("writer ok%d failed beside the failing call: %v", i, err)
		}
	}
	got := keys(t, db)
	if got["failed"] {
		t.Fatal("the failing call's write was committed")
	}
	for i := range 4 {
		if !got[fmt.Sprint("ok", i)] {
			t.Fatalf("ok%d missing after commit: %v", i, got)
		}
	}
	if txids != [4]int{txids[0], txids[0], txids[0], txids[0]} {
		t.Fatalf("the others committed in transactions %v, want one shared", txids)
	}
}

// TestGroupCommitAloneRunsOnce: a call that acts outside the database runs
// once, in a transaction of its own, even with others queued around it.
func TestGroupCommitAloneRunsOnce(t *testing.T) {
	db := openBareDB(t)
	waitQueued, release := holdCommits(t, db)

	var wg sync.WaitGroup
	var before, after, aloneTx, aloneRuns int
	var aloneErr, beforeErr, afterErr error
	wg.Go(func() { beforeErr = put(db, "before", &before) })
	waitQueued(1)
	wg.Go(func() {
		aloneErr = db.updateAlone(func(tx *bolt.Tx) error {
			aloneRuns++
			aloneTx = tx.ID()
			bkt, err := tx.CreateBucketIfNotExists([]byte("test"))
			if err != nil {
				return err
			}
			return bkt.Put([]byte("alone"), []byte("v"))
		})
	})
	waitQueued(2)
	wg.Go(func() { afterErr = put(db, "after", &after) })
	waitQueued(3)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := errors.Join(beforeErr, aloneErr, afterErr); err != nil {
		t.Fatal(err)
	}
	if aloneRuns != 1 {
		t.Fatalf("alone call ran %d times", aloneRuns)
	}
	if aloneTx == before || aloneTx == after {
		t.Fatalf("alone call shared a transaction: before %d, alone %d, after %d", before, aloneTx, after)
	}
	if !(before < aloneTx && aloneTx < after) {
		t.Fatalf("commits out of order: before %d, alone %d, after %d", before, aloneTx, after)
	}
}

// TestGroupCommitConcurrent hammers Update from many goroutines, some
// failing, for the race detector and to check every success is kept.
func TestGroupCommitConcurrent(t *testing.T) {
	db := openBareDB(t)
	const workers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				key := fmt.Sprintf("w%d-%d", w, i)
				err := db.Update(func(tx *bolt.Tx) error {
					bkt, err := tx.CreateBucketIfNotExists([]byte("test"))
					if err != nil {
						return err
					}
					if err := bkt.Put([]byte(key), []byte("v")); err != nil {
						return err
					}
					if i%7 == 0 {
						return errors.New("refused")
					}
					return nil
				})
				if (err != nil) != (i%7 == 0) {
					errs <- fmt.Errorf("%s: %v", key, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := keys(t, db)
	for w := range workers {
		for i := range each {
			key := fmt.Sprintf("w%d-%d", w, i)
			if got[key] != (i%7 != 0) {
				t.Fatalf("%s committed = %v", key, got[key])
			}
		}
	}
}
