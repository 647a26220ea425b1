package client

import (
	"context"
	"testing"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/testsuite"
)

// TestSnapshotter runs containerd's snapshotter suite against each of the
// daemon's snapshotters through the Go client's snapshot service. The
// suite mounts what the daemon returns in this process, in the private
// mount namespace.
func TestSnapshotter(t *testing.T) {
	for _, sn := range snapshotters {
		t.Run(sn, func(t *testing.T) {
			testsuite.SnapshotterSuite(t, sn, func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
				c, err := newSuiteClient()
				if err != nil {
					return nil, nil, err
				}
				return c.SnapshotService(sn), c.Close, nil
			})
		})
	}
}
