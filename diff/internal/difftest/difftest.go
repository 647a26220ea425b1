// Package difftest has helpers for the differ tests: layers built in
// memory, a content store to put them in, bind mounts of directories.
package difftest

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/archive/compression"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/mount"
)

// Entry is a tar entry; Data is a regular file's content.
type Entry struct {
	Name, Data, Link string
	Type             byte
	Mode             int64
}

// File, Dir, Symlink and Whiteout make entries.
func File(name, data string) Entry {
	return Entry{Name: name, Data: data, Type: tar.TypeReg, Mode: 0o644}
}
func Dir(name string) Entry { return Entry{Name: name, Type: tar.TypeDir, Mode: 0o755} }
func Symlink(name, target string) Entry {
	return Entry{Name: name, Link: target, Type: tar.TypeSymlink, Mode: 0o777}
}
func Whiteout(dir, name string) Entry { return File(filepath.Join(dir, ".wh."+name), "") }

// Tar returns the entries as a tar.
func Tar(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Linkname: e.Link,
			Size: int64(len(e.Data)), ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.Data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Compress compresses b with c.
func Compress(t testing.TB, b []byte, c compression.Compression) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := compression.CompressStream(&buf, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Store returns a content store in a temp dir that keeps labels, as the
// metadata layer's does.
func Store(t testing.TB) content.Store {
	t.Helper()
	s, err := local.NewLabeledStore(filepath.Join(t.TempDir(), "content"), &labels{m: map[digest.Digest]map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// labels is an in-memory local.LabelStore.
type labels struct {
	mu sync.Mutex
	m  map[digest.Digest]map[string]string
}

func (l *labels) Get(d digest.Digest) (map[string]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return copyMap(l.m[d]), nil
}

func (l *labels) Set(d digest.Digest, m map[string]string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[d] = copyMap(m)
	return nil
}

func (l *labels) Update(d digest.Digest, update map[string]string) (map[string]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.m[d]
	if m == nil {
		m = map[string]string{}
		l.m[d] = m
	}
	for k, v := range update {
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return copyMap(m), nil
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Put stores b as a blob of media type mt.
func Put(t testing.TB, s content.Store, b []byte, mt string) ocispec.Descriptor {
	t.Helper()
	desc := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := content.WriteBlob(context.Background(), s, "put-"+desc.Digest.Encoded(), bytes.NewReader(b), desc); err != nil {
		t.Fatal(err)
	}
	return desc
}

// Bind returns a read-write bind mount of dir.
func Bind(dir string) []mount.Mount {
	return []mount.Mount{{Type: "bind", Source: dir, Options: []string{"rbind", "rw"}}}
}

// Mkdirs makes directories under a temp dir and returns their paths.
func Mkdirs(t testing.TB, names ...string) []string {
	t.Helper()
	base := t.TempDir()
	var out []string
	for _, n := range names {
		p := filepath.Join(base, n)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// Tree returns root's entries as "path type content" lines, sorted, for
// comparing trees.
func Tree(t testing.TB, root string) string {
	t.Helper()
	var lines []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		line := rel + " " + fi.Mode().String()
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += " " + string(b)
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
