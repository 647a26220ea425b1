package metadata

import (
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/llitfkitfk/containerd/filters"
	"github.com/llitfkitfk/containerd/namespaces"
)

// listObjects is List for the stores that keep one bucket per object under
// a namespace bucket (images, containers, leases): it reads every object
// of the context's namespace and keeps those matching any of fs.
func listObjects[T any](ctx context.Context, db *DB, fs []string,
	objects func(tx *bolt.Tx, ns string) *bolt.Bucket,
	read func(name string, bkt *bolt.Bucket) (T, error),
	adapt func(T) filters.Adaptor,
) ([]T, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return nil, err
	}
	var list []T
	err = db.View(func(tx *bolt.Tx) error {
		bkt := objects(tx, ns)
		if bkt == nil {
			return nil
		}
		return bkt.ForEachBucket(func(k []byte) error {
			obj, err := read(string(k), bkt.Bucket(k))
			if err != nil {
				return err
			}
			if filter.Match(adapt(obj)) {
				list = append(list, obj)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return list, nil
}
