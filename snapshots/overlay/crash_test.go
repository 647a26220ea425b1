package overlay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/snapshots/storage"
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

// After such a crash every Prepare got the crashed one's ID again and
// failed with "file exists", across restarts. It must succeed, on a
// directory of its own, in the same run and after a restart.
func TestPrepareAfterCrashBeforeRecord(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			ctx := context.Background()
			root := t.TempDir()
			s, err := NewSnapshotter(root)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { s.Close() }()

			crashBeforeRecord(t, s.(*snapshotter))
			if restart {
				s.Close()
				if s, err = NewSnapshotter(root); err != nil {
					t.Fatal(err)
				}
			}
			for _, key := range []string{"next", "after-next"} {
				mounts, err := s.Prepare(ctx, key, "")
				if err != nil {
					t.Fatalf("Prepare %q after the crash: %v", key, err)
				}
				// No parent: a bind mount of the snapshot's own fs directory.
				entries, err := os.ReadDir(mounts[0].Source)
				if err != nil || len(entries) != 0 {
					t.Fatalf("%s's directory holds %v (%v), want nothing", key, entries, err)
				}
			}
			var keys []string
			s.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
				keys = append(keys, info.Name)
				return nil
			})
			if len(keys) != 2 {
				t.Errorf("snapshots %q, want the two prepared", keys)
			}
			if entries, _ := os.ReadDir(filepath.Join(root, "snapshots")); len(entries) != 2 {
				t.Errorf("snapshot directories %v, want the two prepared ones' alone", entries)
			}
		})
	}
}
