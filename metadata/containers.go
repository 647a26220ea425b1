package metadata

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/filters"
	"github.com/llitfkitfk/containerd/identifiers"
	"github.com/llitfkitfk/containerd/namespaces"
)

// The keys of a container record, containerd's:
//
//	containers/<id>/createdat, updatedat
//	containers/<id>/labels/<key>
//	containers/<id>/image                the image name
//	containers/<id>/runtime/name
//	containers/<id>/runtime/options      a marshalled google.protobuf.Any
//	containers/<id>/spec                 a marshalled google.protobuf.Any
//	containers/<id>/snapshotter, snapshotKey
//	containers/<id>/extensions/<name>    marshalled google.protobuf.Any
//	containers/<id>/sandboxid
var (
	bucketKeyImage      = []byte("image")
	bucketKeyRuntime    = []byte("runtime")
	bucketKeyOptions    = []byte("options")
	bucketKeySpec       = []byte("spec")
	bucketKeyExtensions = []byte("extensions")
	bucketKeySandboxID  = []byte("sandboxid")
)

type containerStore struct {
	db *DB
}

// NewContainerStore returns the container store of db. Containers are
// garbage collection roots: their snapshots, and what gc.ref labels on
// them name, are kept.
func NewContainerStore(db *DB) containers.Store {
	return &containerStore{db: db}
}

func (s *containerStore) Get(ctx context.Context, id string) (containers.Container, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return containers.Container{}, err
	}
	e, ok := s.db.containers.get(ns, id)
	if !ok {
		return containers.Container{}, fmt.Errorf("container %q in namespace %q: %w", id, ns, errdefs.ErrNotFound)
	}
	if e.err != nil {
		return containers.Container{}, e.err
	}
	return cloneContainer(&e.v), nil
}

// List answers from the DB's index (see index.go), with copies.
func (s *containerStore) List(ctx context.Context, fs ...string) ([]containers.Container, error) {
	list, err := listIndexed(ctx, s.db.containers, fs, func(c *containers.Container) filters.Adaptor { return adaptContainer(*c) })
	if err != nil {
		return nil, err
	}
	out := make([]containers.Container, len(list))
	for i, e := range list {
		out[i] = cloneContainer(&e.v)
	}
	return out, nil
}

// cloneContainer copies what a caller could change in place of an indexed
// container: its maps and the Any messages (not their bytes, which are
// replaced, never written to).
func cloneContainer(c *containers.Container) containers.Container {
	out := *c
	out.Labels = maps.Clone(c.Labels)
	out.Spec = cloneAny(c.Spec)
	out.Runtime.Options = cloneAny(c.Runtime.Options)
	if c.Extensions != nil {
		out.Extensions = make(map[string]*anypb.Any, len(c.Extensions))
		for k, v := range c.Extensions {
			out.Extensions[k] = cloneAny(v)
		}
	}
	return out
}

func cloneAny(a *anypb.Any) *anypb.Any {
	if a == nil {
		return nil
	}
	return &anypb.Any{TypeUrl: a.TypeUrl, Value: a.Value}
}

// Create adds the container, setting its times; the ones given are
// ignored.
func (s *containerStore) Create(ctx context.Context, c containers.Container) (containers.Container, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return containers.Container{}, err
	}
	if err := validateContainer(&c); err != nil {
		return containers.Container{}, fmt.Errorf("create container: %w", err)
	}
	c.CreatedAt = time.Now().UTC()
	c.UpdatedAt = c.CreatedAt
	c.Labels = withoutEmpty(c.Labels)
	err = s.db.Update(func(tx *bolt.Tx) error {
		bkt, err := createBucketIfNotExists(tx, namespacePath(ns, bucketKeyObjectContainers)...)
		if err != nil {
			return err
		}
		cbkt, err := bkt.CreateBucket([]byte(c.ID))
		if errors.Is(err, bolterrors.ErrBucketExists) {
			return fmt.Errorf("container %q: %w", c.ID, errdefs.ErrAlreadyExists)
		}
		if err != nil {
			return fmt.Errorf("create container %q: %w", c.ID, err)
		}
		if err := writeContainer(cbkt, &c); err != nil {
			return err
		}
		return s.db.indexContainer(tx, ns, c.ID, cbkt)
	})
	if err != nil {
		return containers.Container{}, err
	}
	return c, nil
}

// Update changes the fields fieldpaths name, as containerd does: "labels",
// "labels.<key>", "image", "spec", "snapshotkey", "extensions" and
// "extensions.<name>". With none, all of those are replaced, and a
// different runtime name or snapshotter is an error rather than ignored,
// so that they may become mutable later without changing what such an
// update means.
func (s *containerStore) Update(ctx context.Context, c containers.Container, fieldpaths ...string) (containers.Container, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return containers.Container{}, err
	}
	if c.ID == "" {
		return containers.Container{}, fmt.Errorf("container id must not be empty: %w", errdefs.ErrInvalidArgument)
	}

	var updated containers.Container
	err = s.db.Update(func(tx *bolt.Tx) error {
		bkt := getContainerBucket(tx, ns, c.ID)
		if bkt == nil {
			return fmt.Errorf("container %q in namespace %q: %w", c.ID, ns, errdefs.ErrNotFound)
		}
		current, err := readContainer(c.ID, bkt)
		if err != nil {
			return err
		}
		updated = current
		paths := fieldpaths
		if len(paths) == 0 {
			if c.Snapshotter != current.Snapshotter {
				return fmt.Errorf("container %q: snapshotter is immutable: %w", c.ID, errdefs.ErrInvalidArgument)
			}
			if c.Runtime.Name != current.Runtime.Name {
				return fmt.Errorf("container %q: runtime name is immutable: %w", c.ID, errdefs.ErrInvalidArgument)
			}
			paths = []string{"labels", "spec", "extensions", "image", "snapshotkey"}
		}
		for _, path := range paths {
			switch {
			case path == "image":
				updated.Image = c.Image
			case path == "spec":
				updated.Spec = c.Spec
			case path == "snapshotkey":
				updated.SnapshotKey = c.SnapshotKey
			case path == "extensions":
				updated.Extensions = maps.Clone(c.Extensions)
			case strings.HasPrefix(path, "extensions."):
				name := strings.TrimPrefix(path, "extensions.")
				if updated.Extensions == nil {
					updated.Extensions = map[string]*anypb.Any{}
				}
				// A name the update does not carry is removed.
				if ext, ok := c.Extensions[name]; ok && ext != nil {
					updated.Extensions[name] = ext
				} else {
					delete(updated.Extensions, name)
				}
			case applyMapPath(&updated.Labels, c.Labels, path, "labels"):
			case path == "runtime" || strings.HasPrefix(path, "runtime.") || path == "snapshotter":
				return fmt.Errorf("container %q: %s is immutable: %w", c.ID, path, errdefs.ErrInvalidArgument)
			default:
				return fmt.Errorf("container %q: cannot update field %q: %w", c.ID, path, errdefs.ErrInvalidArgument)
			}
		}
		if err := validateContainer(&updated); err != nil {
			return fmt.Errorf("update container: %w", err)
		}
		updated.Labels = withoutEmpty(updated.Labels)
		updated.CreatedAt = current.CreatedAt
		updated.UpdatedAt = time.Now().UTC()
		if err := writeContainer(bkt, &updated); err != nil {
			return err
		}
		return s.db.indexContainer(tx, ns, c.ID, bkt)
	})
	if err != nil {
		return containers.Container{}, err
	}
	return updated, nil
}

// Delete removes the container record; its snapshot, unless something else
// holds it, goes with the next collection.
func (s *containerStore) Delete(ctx context.Context, id string) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if getContainerBucket(tx, ns, id) == nil {
			return fmt.Errorf("container %q in namespace %q: %w", id, ns, errdefs.ErrNotFound)
		}
		if err := getContainersBucket(tx, ns).DeleteBucket([]byte(id)); err != nil {
			return fmt.Errorf("delete container %q: %w", id, err)
		}
		s.db.containers.remove(tx, ns, id)
		s.db.markDirty(false)
		return nil
	})
}

func getContainerBucket(tx *bolt.Tx, ns, id string) *bolt.Bucket {
	if id == "" {
		return nil
	}
	return getBucket(tx, namespacePath(ns, bucketKeyObjectContainers, []byte(id))...)
}

// validateContainer checks what containerd checks: the id, the labels,
// that the runtime and spec are set and that a snapshot key comes with its
// snapshotter.
func validateContainer(c *containers.Container) error {
	if err := identifiers.Validate(c.ID); err != nil {
		return fmt.Errorf("container id: %w", err)
	}
	if err := validateLabels(c.Labels); err != nil {
		return fmt.Errorf("container %q: %w", c.ID, err)
	}
	for name := range c.Extensions {
		if name == "" {
			return fmt.Errorf("container %q: extension name must not be empty: %w", c.ID, errdefs.ErrInvalidArgument)
		}
	}
	if c.Runtime.Name == "" {
		return fmt.Errorf("container %q: runtime name must be set: %w", c.ID, errdefs.ErrInvalidArgument)
	}
	if c.Spec == nil {
		return fmt.Errorf("container %q: spec must be set: %w", c.ID, errdefs.ErrInvalidArgument)
	}
	if c.SnapshotKey != "" && c.Snapshotter == "" {
		return fmt.Errorf("container %q: snapshotter must be set with a snapshot key: %w", c.ID, errdefs.ErrInvalidArgument)
	}
	return nil
}

func readContainer(id string, bkt *bolt.Bucket) (containers.Container, error) {
	c := containers.Container{
		ID:          id,
		Image:       string(bkt.Get(bucketKeyImage)),
		Snapshotter: string(bkt.Get(bucketKeySnapshotter)),
		SnapshotKey: string(bkt.Get(bucketKeySnapshotKey)),
		SandboxID:   string(bkt.Get(bucketKeySandboxID)),
	}
	fail := func(err error) (containers.Container, error) {
		return containers.Container{}, fmt.Errorf("container %q: %w", id, err)
	}
	if err := readTimestamps(bkt, &c.CreatedAt, &c.UpdatedAt); err != nil {
		return fail(err)
	}
	var err error
	if c.Labels, err = readMap(bkt, bucketKeyObjectLabels); err != nil {
		return fail(err)
	}
	if c.Spec, err = readAny(bkt, bucketKeySpec); err != nil {
		return fail(err)
	}
	if rbkt := bkt.Bucket(bucketKeyRuntime); rbkt != nil {
		c.Runtime.Name = string(rbkt.Get(bucketKeyName))
		if c.Runtime.Options, err = readAny(rbkt, bucketKeyOptions); err != nil {
			return fail(err)
		}
	}
	if ebkt := bkt.Bucket(bucketKeyExtensions); ebkt != nil {
		c.Extensions = map[string]*anypb.Any{}
		err := ebkt.ForEach(func(k, _ []byte) error {
			ext, err := readAny(ebkt, k)
			c.Extensions[string(k)] = ext
			return err
		})
		if err != nil {
			return fail(err)
		}
	}
	return c, nil
}

// writeContainer writes c over whatever bkt held. Empty strings are
// stored as absent keys, which read back the same.
func writeContainer(bkt *bolt.Bucket, c *containers.Container) error {
	fail := func(err error) error { return fmt.Errorf("container %q: %w", c.ID, err) }
	if err := writeTimestamps(bkt, c.CreatedAt, c.UpdatedAt); err != nil {
		return fail(err)
	}
	for _, kv := range []struct {
		key   []byte
		value string
	}{
		{bucketKeyImage, c.Image},
		{bucketKeySnapshotter, c.Snapshotter},
		{bucketKeySnapshotKey, c.SnapshotKey},
		{bucketKeySandboxID, c.SandboxID},
	} {
		if err := putString(bkt, kv.key, kv.value); err != nil {
			return fail(err)
		}
	}
	if err := writeAny(bkt, bucketKeySpec, c.Spec); err != nil {
		return fail(err)
	}
	rbkt, err := recreateBucket(bkt, bucketKeyRuntime)
	if err != nil {
		return fail(err)
	}
	if err := rbkt.Put(bucketKeyName, []byte(c.Runtime.Name)); err != nil {
		return fail(fmt.Errorf("write runtime name: %w", err))
	}
	if err := writeAny(rbkt, bucketKeyOptions, c.Runtime.Options); err != nil {
		return fail(err)
	}
	if err := writeExtensions(bkt, c.Extensions); err != nil {
		return fail(err)
	}
	if err := writeMap(bkt, bucketKeyObjectLabels, c.Labels); err != nil {
		return fail(err)
	}
	return nil
}

// writeExtensions replaces the extensions bucket; nil entries are left
// out, as an update removes a name by not carrying it.
func writeExtensions(bkt *bolt.Bucket, exts map[string]*anypb.Any) error {
	if bkt.Bucket(bucketKeyExtensions) != nil {
		if err := bkt.DeleteBucket(bucketKeyExtensions); err != nil {
			return fmt.Errorf("clear extensions: %w", err)
		}
	}
	var ebkt *bolt.Bucket
	for name, ext := range exts {
		if ext == nil {
			continue
		}
		if ebkt == nil {
			var err error
			if ebkt, err = bkt.CreateBucket(bucketKeyExtensions); err != nil {
				return fmt.Errorf("create extensions: %w", err)
			}
		}
		if err := writeAny(ebkt, []byte(name), ext); err != nil {
			return err
		}
	}
	return nil
}

// recreateBucket returns an empty bucket key of bkt, replacing any.
func recreateBucket(bkt *bolt.Bucket, key []byte) (*bolt.Bucket, error) {
	if bkt.Bucket(key) != nil {
		if err := bkt.DeleteBucket(key); err != nil {
			return nil, fmt.Errorf("clear %s: %w", key, err)
		}
	}
	b, err := bkt.CreateBucket(key)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", key, err)
	}
	return b, nil
}

func putString(bkt *bolt.Bucket, key []byte, v string) error {
	var err error
	if v == "" {
		err = bkt.Delete(key)
	} else {
		err = bkt.Put(key, []byte(v))
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// readAny decodes the marshalled Any at key, or returns nil if there is
// none.
func readAny(bkt *bolt.Bucket, key []byte) (*anypb.Any, error) {
	v := bkt.Get(key)
	if v == nil {
		return nil, nil
	}
	a := &anypb.Any{}
	if err := proto.Unmarshal(v, a); err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return a, nil
}

// writeAny stores a marshalled, or deletes the key when a is nil.
func writeAny(bkt *bolt.Bucket, key []byte, a *anypb.Any) error {
	if a == nil {
		if err := bkt.Delete(key); err != nil {
			return fmt.Errorf("write %s: %w", key, err)
		}
		return nil
	}
	data, err := proto.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if err := bkt.Put(key, data); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

func adaptContainer(c containers.Container) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 0 {
			return "", false
		}
		switch fieldpath[0] {
		case "id":
			return c.ID, c.ID != ""
		case "image":
			return c.Image, c.Image != ""
		case "runtime":
			if len(fieldpath) == 2 && fieldpath[1] == "name" {
				return c.Runtime.Name, c.Runtime.Name != ""
			}
		case "snapshotter":
			return c.Snapshotter, c.Snapshotter != ""
		case "snapshotkey":
			return c.SnapshotKey, c.SnapshotKey != ""
		case "sandbox":
			return c.SandboxID, c.SandboxID != ""
		case "labels":
			return mapField(fieldpath[1:], c.Labels)
		}
		return "", false
	})
}
