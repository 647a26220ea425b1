package local

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/plugin"
)

var ctx = context.Background()

func TestRoundTrip(t *testing.T) {
	s, root := newStore(t)
	// Sizes around the parallel threshold and past a writeback chunk.
	for i, n := range []int{0, 1, parallelMin - 1, parallelMin, 3<<20 + 7, writebackChunk + 5<<20} {
		p, desc := blob(n, uint64(i))
		w := openWriter(t, s, fmt.Sprint("ref-", i), desc)
		for rest := p; len(rest) > 0; {
			k := min(len(rest), 1<<20-i*1000)
			write(t, w, rest[:k])
			rest = rest[k:]
		}
		if got := w.Digest(); got != desc.Digest {
			t.Fatalf("size %d: Digest %s, want %s", n, got, desc.Digest)
		}
		if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
			t.Fatalf("size %d: Commit: %v", n, err)
		}
		if got := w.Digest(); got != desc.Digest {
			t.Fatalf("size %d: Digest after Commit %s, want %s", n, got, desc.Digest)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("Close after Commit: %v", err)
		}

		info, err := s.Info(ctx, desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if info.Digest != desc.Digest || info.Size != desc.Size || info.CreatedAt.IsZero() || info.Labels != nil {
			t.Fatalf("Info = %+v", info)
		}
		checkBlob(t, s, p)

		ra, err := s.ReaderAt(ctx, desc)
		if err != nil {
			t.Fatal(err)
		}
		if ra.Size() != desc.Size {
			t.Fatalf("ReaderAt.Size = %d, want %d", ra.Size(), desc.Size)
		}
		if got, err := io.ReadAll(content.NewReader(ra)); err != nil || string(got) != string(p) {
			t.Fatalf("NewReader: %d bytes, %v", len(got), err)
		}
		ra.Close()

		fi, err := os.Stat(filepath.Join(root, "blobs", "sha256", desc.Digest.Encoded()))
		if err != nil || fi.Mode().Perm() != 0o444 {
			t.Fatalf("blob file: %v, %v; want mode 0444", fi, err)
		}
	}
	if sts, err := s.ListStatuses(ctx); err != nil || len(sts) != 0 {
		t.Fatalf("ingests left after commits: %v, %v", sts, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "ingest")); len(entries) != 0 {
		t.Fatalf("ingest directories left: %v", entries)
	}
}

func TestWalk(t *testing.T) {
	s, err := NewLabeledStore(t.TempDir(), &memLabels{})
	if err != nil {
		t.Fatal(err)
	}
	var descs []ocispec.Descriptor
	for i := range 3 {
		p, desc := blob(100+i, uint64(i))
		commit(t, s, fmt.Sprint("ref-", i), p, desc, content.WithLabels(map[string]string{"n": fmt.Sprint(i), "a.b/c": "x"}))
		descs = append(descs, desc)
	}
	walk := func(fs ...string) []digest.Digest {
		t.Helper()
		var got []digest.Digest
		if err := s.Walk(ctx, func(info content.Info) error {
			got = append(got, info.Digest)
			return nil
		}, fs...); err != nil {
			t.Fatalf("Walk(%q): %v", fs, err)
		}
		slices.Sort(got)
		return got
	}
	all := []digest.Digest{descs[0].Digest, descs[1].Digest, descs[2].Digest}
	slices.Sort(all)
	for _, tc := range []struct {
		filters []string
		want    []digest.Digest
	}{
		{nil, all},
		{[]string{"digest==" + descs[1].Digest.String()}, []digest.Digest{descs[1].Digest}},
		{[]string{"size==102"}, []digest.Digest{descs[2].Digest}},
		{[]string{"labels.n==0"}, []digest.Digest{descs[0].Digest}},
		{[]string{"labels.n==0", "labels.n==2"}, sorted(descs[0].Digest, descs[2].Digest)},
		{[]string{`labels."a.b/c"==x`}, all},
		{[]string{"labels.n==0,size==101"}, nil},
		{[]string{"labels.missing"}, nil},
	} {
		if got := walk(tc.filters...); !slices.Equal(got, tc.want) {
			t.Errorf("Walk(%q) = %v, want %v", tc.filters, got, tc.want)
		}
	}
	if err := s.Walk(ctx, func(content.Info) error { return nil }, "labels.=="); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Walk with a bad filter: %v, want InvalidArgument", err)
	}
	stop := fmt.Errorf("stop")
	if err := s.Walk(ctx, func(content.Info) error { return stop }); err != stop {
		t.Errorf("Walk did not return fn's error: %v", err)
	}

	// Update: one label, then all of them.
	info, err := s.Update(ctx, content.Info{Digest: descs[0].Digest, Labels: map[string]string{"n": "", "new": "y"}}, "labels.n", "labels.new")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"a.b/c": "x", "new": "y"}; !mapsEqual(info.Labels, want) {
		t.Fatalf("labels after Update = %v, want %v", info.Labels, want)
	}
	if info.UpdatedAt.Before(info.CreatedAt) {
		t.Fatalf("UpdatedAt %v before CreatedAt %v", info.UpdatedAt, info.CreatedAt)
	}
	if info, err = s.Update(ctx, content.Info{Digest: descs[0].Digest, Labels: map[string]string{"only": "1"}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Info(ctx, descs[0].Digest); !mapsEqual(got.Labels, map[string]string{"only": "1"}) {
		t.Fatalf("labels after replacing = %v", got.Labels)
	}
	if _, err := s.Update(ctx, content.Info{Digest: descs[0].Digest}, "size"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Update of size: %v, want InvalidArgument", err)
	}
	if _, err := s.Update(ctx, content.Info{Digest: digest.FromString("nope")}); !errdefs.IsNotFound(err) {
		t.Fatalf("Update of a missing blob: %v, want NotFound", err)
	}
}

func sorted(ds ...digest.Digest) []digest.Digest { slices.Sort(ds); return ds }

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func TestUnlabeled(t *testing.T) {
	s, _ := newStore(t)
	p, desc := blob(10, 1)
	commit(t, s, "ref", p, desc, content.WithLabels(map[string]string{"k": "v"}))
	info, err := s.Info(ctx, desc.Digest)
	if err != nil || info.Labels != nil || !info.UpdatedAt.Equal(info.CreatedAt) {
		t.Fatalf("Info = %+v, %v; want no labels, UpdatedAt = CreatedAt", info, err)
	}
	_, err = s.Update(ctx, content.Info{Digest: desc.Digest, Labels: map[string]string{"k": "v"}})
	wantErr(t, err, errdefs.ErrFailedPrecondition, "labels not kept")
	var n int
	s.Walk(ctx, func(content.Info) error { n++; return nil }, "labels.k==v")
	if n != 0 {
		t.Fatalf("an unlabeled store matched a label filter")
	}
}

func TestDelete(t *testing.T) {
	s, _ := newStore(t)
	p, desc := blob(1000, 1)
	commit(t, s, "ref", p, desc)
	if err := s.Delete(ctx, desc.Digest); err != nil {
		t.Fatal(err)
	}
	_, err := s.Info(ctx, desc.Digest)
	wantErr(t, err, errdefs.ErrNotFound, desc.Digest.String())
	wantErr(t, s.Delete(ctx, desc.Digest), errdefs.ErrNotFound, desc.Digest.String())
	_, err = s.ReaderAt(ctx, desc)
	wantErr(t, err, errdefs.ErrNotFound, desc.Digest.String())
	_, err = s.Info(ctx, "sha256:../../etc")
	wantErr(t, err, errdefs.ErrInvalidArgument, "digest")
	// Once deleted it can be written again.
	commit(t, s, "ref", p, desc)
}

func TestResume(t *testing.T) {
	s, _ := newStore(t)
	p, desc := blob(3<<20+12345, 2)
	half := len(p) / 2

	w := openWriter(t, s, "ref", desc)
	write(t, w, p[:half])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := s.Status(ctx, "ref")
	if err != nil || st.Offset != int64(half) || st.Total != desc.Size || st.Ref != "ref" || st.StartedAt.IsZero() {
		t.Fatalf("Status = %+v, %v", st, err)
	}

	w = openWriter(t, s, "ref", ocispec.Descriptor{}) // the total is remembered
	defer w.Close()
	if st, _ := w.Status(); st.Offset != int64(half) || st.Total != desc.Size {
		t.Fatalf("resumed writer Status = %+v, want offset %d total %d", st, half, desc.Size)
	}
	if got, want := w.Digest(), digest.FromBytes(p[:half]); got != want {
		t.Fatalf("resumed Digest %s, want %s", got, want)
	}
	write(t, w, p[half:])
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, s, p)
}

// A writer that is never closed, as when the daemon is killed, holds no
// lock in the next store, and what it wrote can be resumed.
func TestResumeAfterCrash(t *testing.T) {
	s, root := newStore(t)
	p, desc := blob(5<<20, 3)
	w := openWriter(t, s, "ref", desc)
	write(t, w, p[:2<<20+17])
	// No Close: the store is simply abandoned.

	if files := blobFiles(t, root); len(files) != 0 {
		t.Fatalf("blobs before commit: %v", files)
	}
	s2, err := NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s2.Status(ctx, "ref")
	if err != nil || st.Offset != 2<<20+17 {
		t.Fatalf("Status after restart = %+v, %v", st, err)
	}
	if err := content.WriteBlob(ctx, s2, "ref", bytesReader(p), desc); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, s2, p)
}

// Reopening an ingest is not a write: the resumed writer's status, like
// the store's, keeps the time of the last write until the next one. This
// is what containerd's content test suite (its Resume case) expects.
func TestResumeUpdatedAt(t *testing.T) {
	for _, closed := range []bool{true, false} {
		t.Run(fmt.Sprintf("closed=%v", closed), func(t *testing.T) {
			s, root := newStore(t)
			p, desc := blob(1000, 9)
			w := openWriter(t, s, "ref", desc)
			preWrite := time.Now()
			write(t, w, p[:500])
			postWrite := time.Now()
			st, _ := w.Status()
			lastWrite := st.UpdatedAt
			if lastWrite.Before(preWrite) || lastWrite.After(postWrite) {
				t.Fatalf("UpdatedAt %v, want the write's time, in [%v, %v]", lastWrite, preWrite, postWrite)
			}
			if closed {
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				// Abandoned, as by a kill: updatedat was never written, so
				// the data's mtime is all there is; the kernel's clock for
				// it may lag the precise one by a tick.
				var err error
				if s, err = NewStore(root); err != nil {
					t.Fatal(err)
				}
				lastWrite = time.Time{}
			}
			time.Sleep(50 * time.Millisecond)

			reopened := time.Now()
			w = openWriter(t, s, "ref", desc)
			defer w.Close()
			for _, got := range updateTimes(t, s, w, "ref") {
				switch {
				case !lastWrite.IsZero() && !got.Equal(lastWrite):
					t.Fatalf("UpdatedAt after reopening %v, want the last write's %v", got, lastWrite)
				case got.After(postWrite) || got.Before(preWrite.Add(-20*time.Millisecond)):
					t.Fatalf("UpdatedAt after reopening %v, want the last write's, in [%v, %v], not the reopening's %v",
						got, preWrite, postWrite, reopened)
				}
			}

			preWrite = time.Now()
			write(t, w, p[500:])
			postWrite = time.Now()
			if st, _ := w.Status(); st.UpdatedAt.Before(preWrite) || st.UpdatedAt.After(postWrite) {
				t.Fatalf("UpdatedAt after a resumed write %v, want in [%v, %v]", st.UpdatedAt, preWrite, postWrite)
			}
			if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// After a machine crash the data file holds whatever reached the disk;
// resuming takes it as it is, and the digest check catches damage.
func TestTornData(t *testing.T) {
	s, root := newStore(t)
	p, desc := blob(1<<20, 4)
	w := openWriter(t, s, "ref", desc)
	write(t, w, p[:600<<10])
	w.Close()

	data := filepath.Join(s.(*store).ingestDir("ref"), dataFile)
	if err := os.Truncate(data, 300<<10); err != nil { // lost the tail
		t.Fatal(err)
	}
	f, _ := os.OpenFile(data, os.O_WRONLY, 0)
	f.WriteAt([]byte("garbage"), 1000) // and a block is wrong
	f.Close()

	w = openWriter(t, s, "ref", desc)
	st, _ := w.Status()
	if st.Offset != 300<<10 {
		t.Fatalf("offset after tear %d, want %d", st.Offset, 300<<10)
	}
	onDisk, _ := os.ReadFile(data)
	if w.Digest() != digest.FromBytes(onDisk) {
		t.Fatalf("resumed digest does not cover the data on disk")
	}
	write(t, w, p[300<<10:])
	err := w.Commit(ctx, desc.Size, desc.Digest)
	wantErr(t, err, errdefs.ErrFailedPrecondition, "unexpected commit digest")
	if files := blobFiles(t, root); len(files) != 0 {
		t.Fatalf("blobs after failed commit: %v", files)
	}
	// The client starts over.
	w = openWriter(t, s, "ref", desc)
	if err := w.Truncate(0); err != nil {
		t.Fatal(err)
	}
	write(t, w, p)
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, s, p)
}

func TestCommitMismatch(t *testing.T) {
	s, root := newStore(t)
	p, desc := blob(100<<10, 5)
	for _, tc := range []struct {
		name     string
		size     int64
		expected digest.Digest
		msg      string
	}{
		{"digest", desc.Size, digest.FromString("other"), "unexpected commit digest " + desc.Digest.String()},
		{"size", desc.Size + 1, desc.Digest, fmt.Sprintf("unexpected commit size %d, expected %d", desc.Size, desc.Size+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := openWriter(t, s, "ref-"+tc.name, ocispec.Descriptor{})
			write(t, w, p)
			err := w.Commit(ctx, tc.size, tc.expected)
			wantErr(t, err, errdefs.ErrFailedPrecondition, tc.msg)
			if _, err := s.Info(ctx, desc.Digest); !errdefs.IsNotFound(err) {
				t.Fatalf("Info after a failed commit: %v, want NotFound", err)
			}
			if files := blobFiles(t, root); len(files) != 0 {
				t.Fatalf("blobs after a failed commit: %v", files)
			}
			// As in containerd the writer is spent, but the ingest is
			// kept and unlocked, to be resumed or aborted.
			if _, err := w.Write([]byte("x")); !errdefs.IsFailedPrecondition(err) {
				t.Fatalf("Write after a failed commit: %v", err)
			}
			st, err := s.Status(ctx, "ref-"+tc.name)
			if err != nil || st.Offset != desc.Size {
				t.Fatalf("Status after a failed commit: %+v, %v", st, err)
			}
			w = openWriter(t, s, "ref-"+tc.name, ocispec.Descriptor{})
			if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
				t.Fatalf("commit after resuming: %v", err)
			}
			checkBlob(t, s, p)
			if err := s.Delete(ctx, desc.Digest); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestAlreadyExists(t *testing.T) {
	s, _ := newStore(t)
	p, desc := blob(1000, 6)
	commit(t, s, "first", p, desc)

	_, err := s.Writer(ctx, content.WithRef("second"), content.WithDescriptor(desc))
	wantErr(t, err, errdefs.ErrAlreadyExists, "content "+desc.Digest.String()+": already exists")

	// Without the descriptor it is found out at commit.
	w := openWriter(t, s, "second", ocispec.Descriptor{})
	write(t, w, p)
	err = w.Commit(ctx, desc.Size, desc.Digest)
	wantErr(t, err, errdefs.ErrAlreadyExists, "content "+desc.Digest.String()+": already exists")
	if _, err := s.Status(ctx, "second"); !errdefs.IsNotFound(err) {
		t.Fatalf("ingest kept after committing existing content: %v", err)
	}
	// The ref is free again.
	openWriter(t, s, "second", ocispec.Descriptor{}).Close()
	// content.WriteBlob treats it as done.
	if err := content.WriteBlob(ctx, s, "third", bytesReader(p), desc); err != nil {
		t.Fatal(err)
	}
}

func TestLocked(t *testing.T) {
	s, _ := newStore(t)
	w := openWriter(t, s, "ref", ocispec.Descriptor{})
	_, err := s.Writer(ctx, content.WithRef("ref"))
	wantErr(t, err, errdefs.ErrUnavailable, "ref ref locked")
	openWriter(t, s, "other", ocispec.Descriptor{}).Close()
	w.Close()
	openWriter(t, s, "ref", ocispec.Descriptor{}).Close()

	// Many at once: exactly one wins each round.
	for range 20 {
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []content.Writer
		)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w, err := s.Writer(ctx, content.WithRef("ref"))
				if err != nil {
					if !errdefs.IsUnavailable(err) {
						t.Errorf("Writer: %v, want Unavailable", err)
					}
					return
				}
				w.Write([]byte("x"))
				mu.Lock()
				winners = append(winners, w)
				mu.Unlock()
			}()
		}
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("%d writers got the same ref", len(winners))
		}
		winners[0].Close()
	}
}

func TestHostileRefs(t *testing.T) {
	s, root := newStore(t)
	refs := []string{
		"../../etc/passwd", "a/b", "/abs", ".", "..", "nul\x00byte", "new\nline",
		strings.Repeat("long", 4096), "ref", "ingest/../blobs/sha256/x",
	}
	for _, ref := range refs {
		w := openWriter(t, s, ref, ocispec.Descriptor{})
		write(t, w, []byte(ref))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		st, err := s.Status(ctx, ref)
		if err != nil || st.Ref != ref || st.Offset != int64(len(ref)) {
			t.Fatalf("Status(%q) = %+v, %v", ref, st, err)
		}
	}
	sts, err := s.ListStatuses(ctx)
	if err != nil || len(sts) != len(refs) {
		t.Fatalf("ListStatuses: %d, %v; want %d", len(sts), err, len(refs))
	}
	sts, err = s.ListStatuses(ctx, `ref=="a/b"`)
	if err != nil || len(sts) != 1 || sts[0].Ref != "a/b" {
		t.Fatalf("ListStatuses(ref==a/b) = %v, %v", sts, err)
	}

	// Everything stayed under root, in the expected places.
	if entries, _ := os.ReadDir(filepath.Dir(root)); len(entries) != 1 {
		t.Fatalf("files beside root: %v", entries)
	}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		parts := strings.Split(rel, string(filepath.Separator))
		ok := rel == "." || rel == "blobs" || rel == "blobs/sha256" || rel == "ingest" ||
			parts[0] == "ingest" && isIngestName(parts[1]) && len(parts) <= 3
		if !ok {
			t.Errorf("unexpected path %s", rel)
		}
		return nil
	})

	for _, ref := range refs {
		if err := s.Abort(ctx, ref); err != nil {
			t.Fatalf("Abort(%q): %v", ref, err)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "ingest")); len(entries) != 0 {
		t.Fatalf("ingests left after Abort: %v", entries)
	}
}

func TestAbort(t *testing.T) {
	s, root := newStore(t)
	w := openWriter(t, s, "ref", ocispec.Descriptor{})
	write(t, w, []byte("some"))
	w.Close()
	if err := s.Abort(ctx, "ref"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Status(ctx, "ref")
	wantErr(t, err, errdefs.ErrNotFound, `"ref"`)
	wantErr(t, s.Abort(ctx, "ref"), errdefs.ErrNotFound, `"ref"`)
	wantErr(t, s.Abort(ctx, "never"), errdefs.ErrNotFound, `"never"`)

	// An ingest aborted under its writer cannot be committed.
	w = openWriter(t, s, "ref", ocispec.Descriptor{})
	write(t, w, []byte("more"))
	if err := s.Abort(ctx, "ref"); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, 0, ""); !errdefs.IsNotFound(err) {
		t.Fatalf("Commit of an aborted ingest: %v, want NotFound", err)
	}
	if files := blobFiles(t, root); len(files) != 0 {
		t.Fatalf("blobs after aborted commit: %v", files)
	}

	// Leftovers of an interrupted Abort are cleared by the next store.
	junk := filepath.Join(root, "ingest", strings.Repeat("a", 64)+abortedMark+"x")
	os.MkdirAll(junk, 0o755)
	if _, err := NewStore(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(junk); !os.IsNotExist(err) {
		t.Fatalf("aborted ingest left: %v", err)
	}
}

func TestTruncate(t *testing.T) {
	s, _ := newStore(t)
	p, desc := blob(2<<20, 7)
	w := openWriter(t, s, "ref", ocispec.Descriptor{})
	defer w.Close()
	write(t, w, []byte("wrong start"))
	if err := w.Truncate(0); err != nil {
		t.Fatal(err)
	}
	write(t, w, p)
	if err := w.Truncate(1 << 20); err != nil {
		t.Fatal(err)
	}
	if st, _ := w.Status(); st.Offset != 1<<20 || w.Digest() != digest.FromBytes(p[:1<<20]) {
		t.Fatalf("after Truncate(1MiB): offset %d, digest %s", st.Offset, w.Digest())
	}
	wantErr(t, w.Truncate(2<<20), errdefs.ErrInvalidArgument, "outside")
	write(t, w, p[1<<20:])
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, s, p)
}

func TestWriterArgs(t *testing.T) {
	s, _ := newStore(t)
	_, err := s.Writer(ctx)
	wantErr(t, err, errdefs.ErrInvalidArgument, "ref")
	_, err = s.Writer(ctx, content.WithRef("r"), content.WithDescriptor(ocispec.Descriptor{Digest: "sha256:nothex"}))
	wantErr(t, err, errdefs.ErrInvalidArgument, "digest")

	// A different total means a different blob: the ingest starts over.
	w := openWriter(t, s, "r", ocispec.Descriptor{Size: 10})
	write(t, w, []byte("12345"))
	w.Close()
	w = openWriter(t, s, "r", ocispec.Descriptor{Size: 20})
	if st, _ := w.Status(); st.Offset != 0 || st.Total != 20 {
		t.Fatalf("Status = %+v, want a fresh ingest of 20", st)
	}
	w.Close()

	// sha512 content is hashed and stored under its own algorithm.
	p := []byte("five hundred and twelve")
	d := digest.SHA512.FromBytes(p)
	commit(t, s, "r512", p, ocispec.Descriptor{Digest: d, Size: int64(len(p))})
	if got, err := content.ReadBlob(ctx, s, ocispec.Descriptor{Digest: d}); err != nil || string(got) != string(p) {
		t.Fatalf("ReadBlob(%s) = %q, %v", d, got, err)
	}
	if info, err := s.Info(ctx, d); err != nil || info.Size != int64(len(p)) {
		t.Fatalf("Info(%s) = %+v, %v", d, info, err)
	}
}

func TestPlugin(t *testing.T) {
	var reg *plugin.Registration
	for _, r := range plugin.Registrations() {
		if r.Type == plugin.ContentPlugin && r.ID == "content" {
			reg = r
		}
	}
	if reg == nil {
		t.Fatal("io.containerd.content.v1.content is not registered")
	}
	root := t.TempDir()
	ic := &plugin.InitContext{Context: ctx, Root: root, Meta: &plugin.Meta{Exports: map[string]string{}}}
	inst, err := reg.InitFn(ic)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := inst.(content.Store); !ok || ic.Meta.Exports["root"] != root {
		t.Fatalf("instance %T, exports %v", inst, ic.Meta.Exports)
	}
}

// A caller that acknowledged data before handing it over gives the time
// of the acknowledgement, and that is the ingest's update time, even
// though the data's mtime is later: before and after a reopening.
func TestWriteReceived(t *testing.T) {
	s, _ := newStore(t)
	p, desc := blob(1000, 10)
	w := openWriter(t, s, "ref", desc)
	received := time.Now().Add(-time.Second).Round(0)
	if n, err := w.(content.ReceivedWriter).WriteReceived(p[:500], received); err != nil || n != 500 {
		t.Fatalf("WriteReceived = %d, %v", n, err)
	}
	if st, _ := w.Status(); !st.UpdatedAt.Equal(received) {
		t.Fatalf("UpdatedAt %v, want the time the data was received, %v", st.UpdatedAt, received)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openWriter(t, s, "ref", desc)
	defer w.Close()
	for _, got := range updateTimes(t, s, w, "ref") {
		if !got.Equal(received) {
			t.Fatalf("UpdatedAt after reopening %v, want the time the data was received, %v", got, received)
		}
	}
}

// updateTimes returns the update time of ingest ref as its writer w tells
// it and as the store s does.
func updateTimes(t *testing.T, s content.Store, w content.Writer, ref string) []time.Time {
	t.Helper()
	resumed, err := w.Status()
	if err != nil {
		t.Fatal(err)
	}
	stored, err := s.Status(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	return []time.Time{resumed.UpdatedAt, stored.UpdatedAt}
}

// Sync before Commit leaves the commit as it was; after, it is an error.
func TestWriterSync(t *testing.T) {
	cs, _ := newStore(t)
	ctx := context.Background()
	data := []byte("synced early")
	w, err := cs.Writer(ctx, content.WithRef("sync"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	s, ok := w.(interface{ Sync() error })
	if !ok {
		t.Fatalf("%T has no Sync", w)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, int64(len(data)), digest.FromBytes(data)); err != nil {
		t.Fatal(err)
	}
	if got, err := content.ReadBlob(ctx, cs, ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}); err != nil || string(got) != string(data) {
		t.Fatalf("blob %q, %v", got, err)
	}
	if err := s.Sync(); err == nil {
		t.Fatal("Sync after Commit succeeded")
	}
}
