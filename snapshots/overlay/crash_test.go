package overlay

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/snapshots/storage"
	"github.com/llitfkitfk/containerd/snapshots/testsuite"
)

// crashBeforeRecord does what a Prepare does up to the point a kill -9
// between installing the snapshot's directory and committing its record
// stops it: the directory is in place under the ID, with a file of its
// own, and the transaction that recorded the ID is lost.
func crashBeforeRecord(t *testing.T, o *snapshotter) {
	t.Helper()
	ctx := context.Background()
	tmp, err := o.Dirs.Temp()
	if err != nil {
		t.Fatal(err)
	}
	if err := o.prepareDir(tmp.Path, snapshots.KindActive, ""); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp.Path, "fs", "from-the-crash"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	crash := errors.New("killed")
	err = o.MS.WithTransaction(ctx, true, func(ctx context.Context) error {
		sn, err := storage.CreateSnapshot(ctx, snapshots.KindActive, "crashed", "")
		if err == nil {
			_, err = tmp.Install(sn.ID) // a kill runs no undo
		}
		if err == nil {
			err = crash
		}
		return err
	})
	if err != crash {
		t.Fatal(err)
	}
}

func TestPrepareAfterCrashBeforeRecord(t *testing.T) {
	testsuite.CrashBeforeRecord(t, newTestSnapshotter, func(t *testing.T, s snapshots.Snapshotter) {
		crashBeforeRecord(t, s.(*snapshotter))
	})
}
