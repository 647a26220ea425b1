package testsuite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/snapshots/internal/dirstore"
	"github.com/llitfkitfk/containerd/snapshots/storage"
)

// CrashBeforeRecord checks what a kill -9 between installing a new
// snapshot's directory and committing its record leaves: a directory
// under an ID no record names. Every Prepare after it used to get that ID
// again and fail with "file exists", across restarts; it must succeed on a
// directory of its own, in the same run and after a restart.
//
// The snapshotters keep their directories in a dirstore.Store, which
// store returns; prepare lays out a new snapshot's directory as s does,
// and returns where its files go.
func CrashBeforeRecord(t *testing.T, newSnapshotter NewFunc, store func(s snapshots.Snapshotter) *dirstore.Store, prepare func(s snapshots.Snapshotter, dir string) (string, error)) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			ctx, root := newRoot(t)
			s, closeFn, err := newSnapshotter(ctx, root)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { closeFn() }()
			crashBeforeRecord(t, store(s), func(dir string) (string, error) { return prepare(s, dir) })
			if restart {
				closeFn()
				if s, closeFn, err = newSnapshotter(ctx, root); err != nil {
					t.Fatal(err)
				}
			}
			for _, key := range []string{"next", "after-next"} {
				mounts, err := s.Prepare(ctx, key, "")
				if err != nil {
					t.Fatalf("Prepare %q after the crash: %v", key, err)
				}
				// No parent: a bind mount of the snapshot's own directory.
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

// crashBeforeRecord does what a Prepare does up to the point a kill -9
// between installing the snapshot's directory and committing its record
// stops it: the directory is in place under the ID, with a file of its
// own, and the transaction that recorded the ID is lost.
func crashBeforeRecord(t *testing.T, s *dirstore.Store, prepare func(dir string) (string, error)) {
	t.Helper()
	ctx := context.Background()
	tmp, err := s.Dirs.Temp()
	if err != nil {
		t.Fatal(err)
	}
	files, err := prepare(tmp.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(files, "from-the-crash"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	crash := errors.New("killed")
	err = s.MS.WithTransaction(ctx, true, func(ctx context.Context) error {
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
