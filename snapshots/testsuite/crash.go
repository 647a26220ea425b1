package testsuite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/llitfkitfk/containerd/snapshots"
)

// CrashBeforeRecord checks what a kill -9 between installing a new
// snapshot's directory and committing its record leaves: a directory
// under an ID no record names, which crash makes in the snapshotter it is
// given. Every Prepare after it used to get that ID again and fail with
// "file exists", across restarts; it must succeed on a directory of its
// own, in the same run and after a restart.
func CrashBeforeRecord(t *testing.T, newSnapshotter NewFunc, crash func(t *testing.T, s snapshots.Snapshotter)) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			ctx, root := newRoot(t)
			s, closeFn, err := newSnapshotter(ctx, root)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { closeFn() }()
			crash(t, s)
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
