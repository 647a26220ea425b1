package metadata

import (
	"context"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/llitfkitfk/containerd/filters"
	"github.com/llitfkitfk/containerd/namespaces"
)

// listRecords is List for the stores read straight from bolt (leases): it
// decodes the records of the context's namespace that match any of fs.
// Filters read the record in place (see recordAdaptor), so a record they
// skip is never decoded.
func listRecords[T any](ctx context.Context, db *DB, fs []string, kind recordKind,
	objects func(tx *bolt.Tx, ns string) *bolt.Bucket,
	read func(name string, bkt *bolt.Bucket) (T, error),
) ([]T, error) {
	ns, filter, err := namespaceAndFilter(ctx, fs)
	if err != nil {
		return nil, err
	}
	var list []T
	err = db.View(func(tx *bolt.Tx) error {
		bkt := objects(tx, ns)
		if bkt == nil {
			return nil
		}
		ra := &recordAdaptor{kind: kind}
		return bkt.ForEachBucket(func(k []byte) error {
			ra.name, ra.bkt = k, bkt.Bucket(k)
			if !filter.Match(ra) {
				return nil
			}
			obj, err := read(string(k), ra.bkt)
			if err != nil {
				return err
			}
			list = append(list, obj)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return list, nil
}

// recordKind says which fields a recordAdaptor serves.
type recordKind int

const (
	leaseRecord recordKind = iota // id, labels.<key>
	blobRecord                    // digest, size, labels, labels.<key>
)

// recordAdaptor gives filters the fields of a record as bolt holds it,
// reading only what a filter asks for, as content.AdaptInfo and
// adaptLease give them from decoded records. One is reused for every
// record of a list.
type recordAdaptor struct {
	kind recordKind
	name []byte
	bkt  *bolt.Bucket
}

func (ra *recordAdaptor) Field(fieldpath []string) (string, bool) {
	if len(fieldpath) == 0 {
		return "", false
	}
	switch {
	case fieldpath[0] == "labels":
		lbkt := ra.bkt.Bucket(bucketKeyObjectLabels)
		if len(fieldpath) == 1 {
			// Whether there are labels, for blobs; leases have no such field.
			if ra.kind != blobRecord || lbkt == nil {
				return "", false
			}
			k, _ := lbkt.Cursor().First()
			return "", k != nil
		}
		if lbkt == nil {
			return "", false
		}
		v := lbkt.Get([]byte(strings.Join(fieldpath[1:], ".")))
		return string(v), v != nil
	case ra.kind == leaseRecord && fieldpath[0] == "id":
		return string(ra.name), len(ra.name) > 0
	case ra.kind == blobRecord && fieldpath[0] == "digest":
		return string(ra.name), true
	case ra.kind == blobRecord && fieldpath[0] == "size":
		return strconv.FormatInt(readInt(ra.bkt, bucketKeySize), 10), true
	}
	return "", false
}

// listIndexed is List for the stores answering from an index: the
// context's namespace's records matching any of fs.
func listIndexed[T any](ctx context.Context, x *objectIndex[T], fs []string, adapt func(*T) filters.Adaptor) ([]*indexed[T], error) {
	ns, filter, err := namespaceAndFilter(ctx, fs)
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

// namespaceAndFilter is what every List needs first: the context's
// namespace and the filter fs make.
func namespaceAndFilter(ctx context.Context, fs []string) (string, filters.Filter, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return "", nil, err
	}
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return "", nil, err
	}
	return ns, filter, nil
}
