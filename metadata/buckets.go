// Package metadata keeps the daemon's namespaced records (namespaces, images,
// containers, content and snapshot references, leases) in one bolt database.
//
// The bucket layout is the one containerd uses for its schema "v1", so that a
// database written here reads the same there. A "/" separates buckets:
//
//	v1/version                          varint minor revision of the schema
//	v1/<namespace>/labels/<key>         namespace labels
//	v1/<namespace>/images/<name>/...    images
//	v1/<namespace>/containers/<id>/...  containers
//	v1/<namespace>/content/blob/<dgst>  content blobs
//	v1/<namespace>/content/ingests/<r>  content ingests in progress
//	v1/<namespace>/snapshots/<sn>/<key> snapshots, per snapshotter
//	v1/<namespace>/leases/<id>/...      leases
//	v1/<namespace>/sandboxes/<id>/...   sandboxes
//
// Because "version" is a plain key beside the namespace buckets, no namespace
// may be named "version".
//
// The records this package writes look like this; times are
// time.MarshalBinary, integers signed varints, and an empty map is an
// absent bucket:
//
//	images/<name>/createdat, updatedat
//	images/<name>/labels/<key>            image labels
//	images/<name>/annotations/<key>       the target's annotations
//	images/<name>/target/digest, mediatype, size
//
//	content/blob/<dgst>/createdat, updatedat, size
//	content/blob/<dgst>/labels/<key>      labels, per namespace
//	content/ingests/<ref>/ref             the backing store's ref
//	content/ingests/<ref>/expireat        set when no lease holds the ingest
//	content/ingests/<ref>/expected        digest of an existing blob being
//	                                      shared rather than written
//
//	snapshots/<sn>/<key>/name             the backing snapshotter's key
//	snapshots/<sn>/<key>/parent           the parent's key, if any
//	snapshots/<sn>/<key>/children/<key>   the children's keys, each an
//	                                      empty value
//	snapshots/<sn>/<key>/createdat, updatedat
//	snapshots/<sn>/<key>/labels/<k>       labels, per namespace
//
//	leases/<id>/createdat
//	leases/<id>/labels/<key>
//	leases/<id>/content/<dgst>            resources the lease holds, each
//	leases/<id>/ingests/<ref>             an empty value
//	leases/<id>/images/<name>
//	leases/<id>/snapshots/<sn>/<key>
package metadata

import (
	"fmt"

	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// Bucket and key names. Changing any of them breaks existing databases.
var (
	bucketKeyVersion   = []byte(schemaVersion)
	bucketKeyDBVersion = []byte("version")

	bucketKeyObjectLabels     = []byte("labels")
	bucketKeyObjectImages     = []byte("images")
	bucketKeyObjectContainers = []byte("containers")
	bucketKeyObjectSnapshots  = []byte("snapshots")
	bucketKeyObjectContent    = []byte("content")
	bucketKeyObjectBlob       = []byte("blob")
	bucketKeyObjectIngests    = []byte("ingests")
	bucketKeyObjectLeases     = []byte("leases")

	bucketKeyAnnotations = []byte("annotations")
	bucketKeyCreatedAt   = []byte("createdat")
	bucketKeyUpdatedAt   = []byte("updatedat")
	bucketKeyTarget      = []byte("target")
	bucketKeyDigest      = []byte("digest")
	bucketKeyMediaType   = []byte("mediatype")
	bucketKeySize        = []byte("size")
	bucketKeyRef         = []byte("ref")
	bucketKeyExpected    = []byte("expected")
	bucketKeyExpireAt    = []byte("expireat")
	bucketKeySnapshotter = []byte("snapshotter")
	bucketKeySnapshotKey = []byte("snapshotKey")
	bucketKeyName        = []byte("name")
	bucketKeyParent      = []byte("parent")
	bucketKeyChildren    = []byte("children")
)

// getBucket walks keys from the root and returns nil if any step is missing
// or is a plain key rather than a bucket.
func getBucket(tx *bolt.Tx, keys ...[]byte) *bolt.Bucket {
	bkt := tx.Bucket(keys[0])
	for _, key := range keys[1:] {
		if bkt == nil {
			return nil
		}
		bkt = bkt.Bucket(key)
	}
	return bkt
}

// createBucketIfNotExists walks keys from the root, creating each missing
// bucket; tx must be writable.
func createBucketIfNotExists(tx *bolt.Tx, keys ...[]byte) (*bolt.Bucket, error) {
	bkt, err := tx.CreateBucketIfNotExists(keys[0])
	if err != nil {
		return nil, fmt.Errorf("create bucket %q: %w", keys[0], err)
	}
	for _, key := range keys[1:] {
		if bkt, err = bkt.CreateBucketIfNotExists(key); err != nil {
			return nil, fmt.Errorf("create bucket %q: %w", key, err)
		}
	}
	return bkt, nil
}

// namespacePath returns the bucket path of keys below namespace, the form
// every namespaced store builds its paths in.
func namespacePath(namespace string, keys ...[]byte) [][]byte {
	return append([][]byte{bucketKeyVersion, []byte(namespace)}, keys...)
}

func getNamespaceBucket(tx *bolt.Tx, namespace string) *bolt.Bucket {
	return getBucket(tx, namespacePath(namespace)...)
}

func getNamespaceLabelsBucket(tx *bolt.Tx, namespace string) *bolt.Bucket {
	return getBucket(tx, namespacePath(namespace, bucketKeyObjectLabels)...)
}

func getImagesBucket(tx *bolt.Tx, namespace string) *bolt.Bucket {
	return getBucket(tx, namespacePath(namespace, bucketKeyObjectImages)...)
}

func getContainersBucket(tx *bolt.Tx, namespace string) *bolt.Bucket {
	return getBucket(tx, namespacePath(namespace, bucketKeyObjectContainers)...)
}

func getBlobsBucket(tx *bolt.Tx, namespace string) *bolt.Bucket {
	return getBucket(tx, namespacePath(namespace, bucketKeyObjectContent, bucketKeyObjectBlob)...)
}

func getBlobBucket(tx *bolt.Tx, namespace string, dgst digest.Digest) *bolt.Bucket {
	return getBucket(tx, namespacePath(namespace, bucketKeyObjectContent, bucketKeyObjectBlob, []byte(dgst))...)
}

func getIngestsBucket(tx *bolt.Tx, namespace string) *bolt.Bucket {
	return getBucket(tx, namespacePath(namespace, bucketKeyObjectContent, bucketKeyObjectIngests)...)
}

func getIngestBucket(tx *bolt.Tx, namespace, ref string) *bolt.Bucket {
	return getBucket(tx, namespacePath(namespace, bucketKeyObjectContent, bucketKeyObjectIngests, []byte(ref))...)
}

// getSnapshottersBucket returns the bucket holding one bucket per
// snapshotter.
func getSnapshottersBucket(tx *bolt.Tx, namespace string) *bolt.Bucket {
	return getBucket(tx, namespacePath(namespace, bucketKeyObjectSnapshots)...)
}

// getSnapshotterBucket returns the bucket of one snapshotter's snapshots
// in namespace.
func getSnapshotterBucket(tx *bolt.Tx, namespace, snapshotter string) *bolt.Bucket {
	return getBucket(tx, namespacePath(namespace, bucketKeyObjectSnapshots, []byte(snapshotter))...)
}

func getLeasesBucket(tx *bolt.Tx, namespace string) *bolt.Bucket {
	return getBucket(tx, namespacePath(namespace, bucketKeyObjectLeases)...)
}

func getLeaseBucket(tx *bolt.Tx, namespace, id string) *bolt.Bucket {
	return getBucket(tx, namespacePath(namespace, bucketKeyObjectLeases, []byte(id))...)
}

// isBucketEmpty reports whether bkt is missing or has no entries.
func isBucketEmpty(bkt *bolt.Bucket) bool {
	if bkt == nil {
		return true
	}
	k, _ := bkt.Cursor().First()
	return k == nil
}
