package overlay

import (
	"path/filepath"
	"testing"

	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/snapshots/internal/dirstore"
	"github.com/llitfkitfk/containerd/snapshots/testsuite"
)

func TestPrepareAfterCrashBeforeRecord(t *testing.T) {
	testsuite.CrashBeforeRecord(t, newTestSnapshotter,
		func(s snapshots.Snapshotter) *dirstore.Store { return s.(*snapshotter).Store },
		func(s snapshots.Snapshotter, dir string) (string, error) {
			return filepath.Join(dir, "fs"), s.(*snapshotter).prepareDir(dir, snapshots.KindActive, "")
		})
}
