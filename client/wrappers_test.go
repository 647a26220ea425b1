package client

import (
	"context"
	"testing"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/snapshots"
)

// commitRecorder is a snapshotter that records the parent its commits
// name; every active snapshot's parent is "p".
type commitRecorder struct {
	snapshots.Snapshotter
	parents []string
	labels  []map[string]string
}

func (r *commitRecorder) Stat(_ context.Context, key string) (snapshots.Info, error) {
	return snapshots.Info{Name: key, Parent: "p", Kind: snapshots.KindActive}, nil
}

func (r *commitRecorder) Commit(_ context.Context, _, _ string, opts ...snapshots.Opt) error {
	var info snapshots.Info
	for _, o := range opts {
		if err := o(&info); err != nil {
			return err
		}
	}
	r.parents = append(r.parents, info.Parent)
	r.labels = append(r.labels, info.Labels)
	return nil
}

func TestPreparedParent(t *testing.T) {
	r := &commitRecorder{}
	s := preparedParent{r}
	withParent := func(p string) snapshots.Opt {
		return func(i *snapshots.Info) error { i.Parent = p; return nil }
	}
	labels := snapshots.WithLabels(map[string]string{"k": "v"})
	for _, c := range []struct {
		opts []snapshots.Opt
		want string
	}{
		{[]snapshots.Opt{labels}, ""},
		{[]snapshots.Opt{labels, withParent("p")}, ""},  // prepared on it: not named
		{[]snapshots.Opt{labels, withParent("q")}, "q"}, // a rebase: asked for as it is
	} {
		if err := s.Commit(testCtx(), "name", "key", c.opts...); err != nil {
			t.Fatal(err)
		}
		if got := r.parents[len(r.parents)-1]; got != c.want {
			t.Errorf("commit named parent %q, want %q", got, c.want)
		}
		if l := r.labels[len(r.labels)-1]; l["k"] != "v" {
			t.Errorf("commit lost its labels: %v", l)
		}
	}
}

// offsetWriter is a writer that reports being written to offset until
// truncated.
type offsetWriter struct {
	content.Writer
	offset    int64
	truncated bool
}

func (w *offsetWriter) Status() (content.Status, error) {
	return content.Status{Offset: w.offset}, nil
}

func (w *offsetWriter) Truncate(size int64) error {
	w.truncated, w.offset = true, size
	return nil
}

type offsetStore struct {
	content.Store
	offset int64
	w      *offsetWriter
}

func (s *offsetStore) Writer(context.Context, ...content.WriterOpt) (content.Writer, error) {
	s.w = &offsetWriter{offset: s.offset}
	return s.w, nil
}

func TestFreshIngests(t *testing.T) {
	for _, offset := range []int64{0, 42} {
		s := &offsetStore{offset: offset}
		if _, err := (freshIngests{s}).Writer(testCtx()); err != nil {
			t.Fatal(err)
		}
		if s.w.truncated != (offset > 0) || s.w.offset != 0 {
			t.Errorf("an ingest at %d: truncated %v, now at %d", offset, s.w.truncated, s.w.offset)
		}
	}
}
