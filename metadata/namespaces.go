package metadata

import (
	"context"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/namespaces"
)

type namespaceStore struct {
	tx *bolt.Tx
}

// NewNamespaceStore returns a namespace store that reads and writes within
// tx. Its changes commit or roll back with tx, so a caller can combine them
// with other stores' changes atomically.
func NewNamespaceStore(tx *bolt.Tx) namespaces.Store {
	return &namespaceStore{tx: tx}
}

func (s *namespaceStore) Create(ctx context.Context, namespace string, labels map[string]string) error {
	if err := validateNamespace(namespace); err != nil {
		return err
	}
	for k, v := range labels {
		if err := validateLabel(k, v); err != nil {
			return fmt.Errorf("namespace %q: %w", namespace, err)
		}
	}

	top, err := createBucketIfNotExists(s.tx, bucketKeyVersion)
	if err != nil {
		return err
	}
	bkt, err := top.CreateBucket([]byte(namespace))
	if errors.Is(err, bolterrors.ErrBucketExists) {
		return fmt.Errorf("namespace %q: %w", namespace, errdefs.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("create namespace %q: %w", namespace, err)
	}

	lbkt, err := bkt.CreateBucket(bucketKeyObjectLabels)
	if err != nil {
		return fmt.Errorf("create namespace %q labels: %w", namespace, err)
	}
	for k, v := range labels {
		if err := lbkt.Put([]byte(k), []byte(v)); err != nil {
			return fmt.Errorf("namespace %q: set label %q: %w", namespace, k, err)
		}
	}
	return nil
}

func (s *namespaceStore) Labels(ctx context.Context, namespace string) (map[string]string, error) {
	if getNamespaceBucket(s.tx, namespace) == nil {
		return nil, fmt.Errorf("namespace %q: %w", namespace, errdefs.ErrNotFound)
	}

	labels := map[string]string{}
	// Other stores create a namespace's bucket implicitly, without labels.
	bkt := getNamespaceLabelsBucket(s.tx, namespace)
	if bkt == nil {
		return labels, nil
	}
	err := bkt.ForEach(func(k, v []byte) error {
		labels[string(k)] = string(v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("namespace %q: read labels: %w", namespace, err)
	}
	return labels, nil
}

func (s *namespaceStore) SetLabel(ctx context.Context, namespace, key, value string) error {
	if err := validateLabel(key, value); err != nil {
		return fmt.Errorf("namespace %q: %w", namespace, err)
	}
	bkt := getNamespaceBucket(s.tx, namespace)
	if bkt == nil {
		return fmt.Errorf("namespace %q: %w", namespace, errdefs.ErrNotFound)
	}
	lbkt, err := bkt.CreateBucketIfNotExists(bucketKeyObjectLabels)
	if err != nil {
		return fmt.Errorf("namespace %q: create labels: %w", namespace, err)
	}

	if value == "" {
		err = lbkt.Delete([]byte(key))
	} else {
		err = lbkt.Put([]byte(key), []byte(value))
	}
	if err != nil {
		return fmt.Errorf("namespace %q: set label %q: %w", namespace, key, err)
	}
	return nil
}

// List returns the namespaces in bolt's key order, which is sorted order.
func (s *namespaceStore) List(ctx context.Context) ([]string, error) {
	top := getBucket(s.tx, bucketKeyVersion)
	if top == nil {
		return nil, nil
	}
	var names []string
	err := top.ForEachBucket(func(k []byte) error {
		names = append(names, string(k))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	return names, nil
}

func (s *namespaceStore) Delete(ctx context.Context, namespace string, opts ...namespaces.DeleteOpts) error {
	top := getBucket(s.tx, bucketKeyVersion)
	if top == nil || top.Bucket([]byte(namespace)) == nil {
		return fmt.Errorf("namespace %q: %w", namespace, errdefs.ErrNotFound)
	}

	octx := namespaces.WithNamespace(ctx, namespace)
	for _, opt := range opts {
		if err := opt(octx); err != nil {
			return fmt.Errorf("delete namespace %q: %w", namespace, err)
		}
	}

	kinds, err := s.remaining(namespace)
	if err != nil {
		return err
	}
	if len(kinds) > 0 {
		return fmt.Errorf("namespace %q must be empty, but it still has %s: %w",
			namespace, strings.Join(kinds, ", "), errdefs.ErrFailedPrecondition)
	}

	if err := top.DeleteBucket([]byte(namespace)); err != nil {
		return fmt.Errorf("delete namespace %q: %w", namespace, err)
	}
	return nil
}

// remaining names the kinds of objects still in namespace. It looks only
// for presence, not at the objects, so it stays cheap however many there are.
func (s *namespaceStore) remaining(namespace string) ([]string, error) {
	var kinds []string
	if !isBucketEmpty(getImagesBucket(s.tx, namespace)) {
		kinds = append(kinds, "images")
	}
	if !isBucketEmpty(getBlobsBucket(s.tx, namespace)) {
		kinds = append(kinds, "blobs")
	}
	if !isBucketEmpty(getContainersBucket(s.tx, namespace)) {
		kinds = append(kinds, "containers")
	}
	if sbkt := getSnapshottersBucket(s.tx, namespace); sbkt != nil {
		err := sbkt.ForEachBucket(func(name []byte) error {
			if !isBucketEmpty(sbkt.Bucket(name)) {
				kinds = append(kinds, fmt.Sprintf("snapshots on %q snapshotter", name))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("namespace %q: scan snapshots: %w", namespace, err)
		}
	}
	if !isBucketEmpty(getLeasesBucket(s.tx, namespace)) {
		kinds = append(kinds, "leases")
	}
	return kinds, nil
}

// validateNamespace rejects names that are not identifiers, and "version",
// which is a key in the schema bucket rather than a namespace.
func validateNamespace(namespace string) error {
	if err := namespaces.Validate(namespace); err != nil {
		return fmt.Errorf("namespace: %w", err)
	}
	if namespace == string(bucketKeyDBVersion) {
		return fmt.Errorf("namespace %q is reserved: %w", namespace, errdefs.ErrInvalidArgument)
	}
	return nil
}
