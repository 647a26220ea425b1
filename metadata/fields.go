package metadata

import (
	"encoding/binary"
	"fmt"
	"maps"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The encodings below are containerd's, so records read the same there.

func readTime(bkt *bolt.Bucket, key []byte) (time.Time, error) {
	var t time.Time
	if v := bkt.Get(key); v != nil {
		if err := t.UnmarshalBinary(v); err != nil {
			return time.Time{}, fmt.Errorf("read %s: %w", key, err)
		}
	}
	return t, nil
}

func writeTime(bkt *bolt.Bucket, key []byte, t time.Time) error {
	b, err := t.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if err := bkt.Put(key, b); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

func readTimestamps(bkt *bolt.Bucket, created, updated *time.Time) (err error) {
	if *created, err = readTime(bkt, bucketKeyCreatedAt); err != nil {
		return err
	}
	*updated, err = readTime(bkt, bucketKeyUpdatedAt)
	return err
}

func writeTimestamps(bkt *bolt.Bucket, created, updated time.Time) error {
	if err := writeTime(bkt, bucketKeyCreatedAt, created); err != nil {
		return err
	}
	return writeTime(bkt, bucketKeyUpdatedAt, updated)
}

func readInt(bkt *bolt.Bucket, key []byte) int64 {
	v, _ := binary.Varint(bkt.Get(key))
	return v
}

func writeInt(bkt *bolt.Bucket, key []byte, v int64) error {
	if err := bkt.Put(key, binary.AppendVarint(nil, v)); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// readMap returns the string map in bucket key of bkt, or nil if there is
// none.
func readMap(bkt *bolt.Bucket, key []byte) (map[string]string, error) {
	mbkt := bkt.Bucket(key)
	if mbkt == nil {
		return nil, nil
	}
	m := map[string]string{}
	err := mbkt.ForEach(func(k, v []byte) error {
		m[string(k)] = string(v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return m, nil
}

// writeMap replaces the map in bucket key of bkt with m, less its empty
// values: an empty value is how an update removes a key.
func writeMap(bkt *bolt.Bucket, key []byte, m map[string]string) error {
	if bkt.Bucket(key) != nil {
		if err := bkt.DeleteBucket(key); err != nil {
			return fmt.Errorf("clear %s: %w", key, err)
		}
	}
	var mbkt *bolt.Bucket
	for k, v := range m {
		if v == "" {
			continue
		}
		if mbkt == nil {
			var err error
			if mbkt, err = bkt.CreateBucket(key); err != nil {
				return fmt.Errorf("create %s: %w", key, err)
			}
		}
		if err := mbkt.Put([]byte(k), []byte(v)); err != nil {
			return fmt.Errorf("write %s %q: %w", key, k, err)
		}
	}
	return nil
}

// withoutEmpty returns a copy of m without its empty values: what writeMap
// stores, and so what a read returns.
func withoutEmpty(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := maps.Clone(m)
	maps.DeleteFunc(out, func(_, v string) bool { return v == "" })
	return out
}

func validateLabels(labels map[string]string) error {
	for k, v := range labels {
		if err := validateLabel(k, v); err != nil {
			return err
		}
	}
	return nil
}

// applyMapPath applies one field path of an update to a map field: name
// replaces the map with from, name.<key> copies one key. ok is false if
// path names neither.
func applyMapPath(dst *map[string]string, from map[string]string, path, name string) (ok bool) {
	if path == name {
		*dst = maps.Clone(from)
		return true
	}
	key, found := strings.CutPrefix(path, name+".")
	if !found {
		return false
	}
	if *dst == nil {
		*dst = map[string]string{}
	}
	(*dst)[key] = from[key]
	return true
}

// mapField looks up the rest of a filter's field path, rejoined by ".",
// in m: labels.a.b names the label "a.b".
func mapField(fieldpath []string, m map[string]string) (string, bool) {
	if len(m) == 0 || len(fieldpath) == 0 {
		return "", false
	}
	v, ok := m[strings.Join(fieldpath, ".")]
	return v, ok
}
