package client

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/content/testsuite"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
)

// contentStore is the suite's StoreInitFn: the daemon's content store
// through the Go client. Each context the suite asks for is in a
// namespace of its own (<suite>-n1, -n2, ...; the same names in every
// case, so the cleanup must leave them empty) and under a lease of its
// own, as containerd's own client tests run the suite; the cleanup aborts
// the ingests and deletes the blobs the case left in those namespaces.
func contentStore(ctx context.Context, root string) (context.Context, content.Store, func() error, error) {
	c, err := newSuiteClient()
	if err != nil {
		return nil, nil, nil, err
	}
	var (
		count atomic.Uint64
		cs    = c.ContentStore()
		name  = testsuite.Name(ctx)
	)
	ctx = testsuite.SetContextWrapper(ctx, func(ctx context.Context, sharedNS bool) (context.Context, func(context.Context) error, error) {
		ctx = namespaces.WithNamespace(ctx, fmt.Sprintf("%s-n%d", name, count.Add(1)))
		return c.WithLease(ctx)
	})
	cleanup := func() error {
		defer c.Close()
		for i := uint64(1); i <= count.Load(); i++ {
			ctx := namespaces.WithNamespace(context.Background(), fmt.Sprintf("%s-n%d", name, i))
			statuses, err := cs.ListStatuses(ctx)
			if err != nil {
				return err
			}
			for _, st := range statuses {
				if err := cs.Abort(ctx, st.Ref); err != nil && !errdefs.IsNotFound(err) {
					return fmt.Errorf("abort %s: %w", st.Ref, err)
				}
			}
			if err := cs.Walk(ctx, func(info content.Info) error {
				if err := cs.Delete(ctx, info.Digest); err != nil && !errdefs.IsNotFound(err) {
					return err
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}
	return ctx, cs, cleanup, nil
}

// TestContentStore runs containerd's content store suite against the
// daemon, and the cross-namespace cases of the sharing policy the daemon
// has, containerd's default: a namespace may take up a blob another holds
// by writing it again, without the data.
func TestContentStore(t *testing.T) {
	testsuite.ContentSuite(t, "ContentClient", contentStore)
	testsuite.ContentCrossNSSharedSuite(t, "ContentClientShared", contentStore)
}
