package local

import (
	"strconv"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/transfer"
)

func TestTrackerEvents(t *testing.T) {
	var got []transfer.Progress
	tr := newTracker(func(p transfer.Progress) { got = append(got, p) }, "img", "downloading")
	m := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("m"), Size: 10}
	l := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("l"), Size: 100}

	tr.add(m)
	tr.complete(m)
	tr.children(m, []ocispec.Descriptor{l})
	tr.add(l)
	tr.add(l) // reached twice, reported once
	tr.ingest("whatever-ref", l.Digest)
	tr.update([]content.Status{{Ref: "whatever-ref", Offset: 40}, {Ref: "unrelated", Offset: 5}})
	tr.update([]content.Status{{Ref: "whatever-ref", Offset: 40}}) // no news
	tr.update([]content.Status{{Ref: "whatever-ref", Offset: 70}})
	tr.complete(l)
	tr.update([]content.Status{{Ref: "whatever-ref", Offset: 90}}) // stale: after complete
	tr.complete(l)
	tr.extracting(l.Digest, 30, false)
	tr.update(nil)
	tr.extracting(l.Digest, 100, true)
	tr.update(nil)
	tr.update(nil)

	var seq []string
	for _, p := range got {
		seq = append(seq, p.Event+":"+p.Name[:strings.Index(p.Name, "-")]+":"+strconv.FormatInt(p.Progress, 10))
		if p.Name == refKey(l) && (len(p.Parents) != 1 || p.Parents[0] != refKey(m)) {
			t.Errorf("layer event %s with parents %v", p.Event, p.Parents)
		}
		if p.Name == refKey(m) && (len(p.Parents) != 1 || p.Parents[0] != "img") {
			t.Errorf("manifest event %s with parents %v", p.Event, p.Parents)
		}
	}
	want := "waiting:manifest:0 complete:manifest:10 waiting:layer:0 downloading:layer:40 downloading:layer:70 complete:layer:100 extracting:layer:30 extracted:layer:100"
	if s := strings.Join(seq, " "); s != want {
		t.Errorf("events\n got %s\nwant %s", s, want)
	}

	var nilTracker *tracker // no progress function: every call is a no-op
	nilTracker.add(l)
	nilTracker.complete(l)
	nilTracker.finishPolling()
	if newTracker(nil, "img", "downloading") != nil {
		t.Error("a tracker without a progress function")
	}
}
