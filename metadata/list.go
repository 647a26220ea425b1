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

// listIndexed is List for the stores answering from an index: the
// context's namespace's records matching any of fs.
func listIndexed[T any](ctx context.Context, x *objectIndex[T], fs []string, adapt func(*T) filters.Adaptor) ([]*indexed[T], error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return nil, err
	}
	return x.list(ns, filter, adapt)
}

// indexImage has the image in bkt, as tx leaves it, indexed once tx
// commits.
func (m *DB) indexImage(tx *bolt.Tx, ns, name string, bkt *bolt.Bucket) error {
	v, err := readImage(name, bkt)
	if err != nil {
		return err
	}
	m.images.put(tx, ns, name, v)
	return nil
}

// indexContainer is indexImage for a container.
func (m *DB) indexContainer(tx *bolt.Tx, ns, id string, bkt *bolt.Bucket) error {
	v, err := readContainer(id, bkt)
	if err != nil {
		return err
	}
	m.containers.put(tx, ns, id, v)
	return nil
}
