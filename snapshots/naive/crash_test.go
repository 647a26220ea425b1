package naive

import (
	"testing"

	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/snapshots/internal/dirstore"
	"github.com/llitfkitfk/containerd/snapshots/testsuite"
)

func TestPrepareAfterCrashBeforeRecord(t *testing.T) {
	testsuite.CrashBeforeRecord(t, newTestSnapshotter,
		func(s snapshots.Snapshotter) *dirstore.Store { return s.(*snapshotter).Store },
		// A naive snapshot's directory is its tree.
		func(_ snapshots.Snapshotter, dir string) (string, error) { return dir, nil })
}
