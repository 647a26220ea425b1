package local

import (
	"context"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/transfer"
)

// pollInterval is how often the bytes of blobs in flight are reported.
const pollInterval = 100 * time.Millisecond

type jobState int

const (
	jobWaiting jobState = iota
	jobActive
	jobDone
	jobExtracting
	jobExtracted
)

type job struct {
	name     string
	parents  []string
	desc     ocispec.Descriptor
	state    jobState
	progress int64 // bytes reported so far
	extract  int64 // bytes unpacked so far
	reported int64 // of extract, the bytes reported
	extDone  bool
}

// tracker turns what a transfer does to each blob into the progress
// events containerd sends, which ctr 2.x draws as one bar per blob, nested
// under its parents: "waiting" when a blob is reached, "downloading" (or
// "uploading") with its bytes while it moves, "complete" or "already
// exists" when it is there, "extracting"/"extracted" as it is unpacked.
//
// Bytes in flight are not pushed by the copy but polled from the ingests'
// statuses, so the copy's hot path costs nothing and a slow client only
// sees fewer, larger steps. A nil *tracker does nothing, so a transfer
// without a progress function pays nothing either.
type tracker struct {
	mu      sync.Mutex
	pf      transfer.ProgressFunc
	root    string // the parent named by descriptors with no other
	moving  string // "downloading" or "uploading"
	jobs    map[digest.Digest]*job
	parents map[digest.Digest][]string
	refs    map[string]digest.Digest // ingest ref -> blob being written

	stop chan struct{}
	done chan struct{}
}

func newTracker(pf transfer.ProgressFunc, root, moving string) *tracker {
	if pf == nil {
		return nil
	}
	return &tracker{
		pf:      pf,
		root:    root,
		moving:  moving,
		jobs:    map[digest.Digest]*job{},
		parents: map[digest.Digest][]string{},
		refs:    map[string]digest.Digest{},
	}
}

// refKey is the name a blob's bar has, as containerd names it: the kind
// of content and its digest.
func refKey(desc ocispec.Descriptor) string {
	kind := "unknown"
	switch {
	case images.IsIndexType(desc.MediaType):
		kind = "index"
	case images.IsManifestType(desc.MediaType):
		kind = "manifest"
	case images.IsConfigType(desc.MediaType):
		kind = "config"
	case images.IsLayerType(desc.MediaType):
		kind = "layer"
	}
	return kind + "-" + desc.Digest.String()
}

// jobLocked returns desc's job, making it (and reporting it "waiting") if
// it is new.
func (t *tracker) jobLocked(desc ocispec.Descriptor) *job {
	if j, ok := t.jobs[desc.Digest]; ok {
		return j
	}
	parents := t.parents[desc.Digest]
	if len(parents) == 0 {
		parents = []string{t.root}
	}
	j := &job{name: refKey(desc), parents: parents, desc: desc}
	t.jobs[desc.Digest] = j
	t.emitLocked(j, "waiting", 0)
	return j
}

func (t *tracker) emitLocked(j *job, event string, n int64) {
	d := j.desc
	t.pf(transfer.Progress{Event: event, Name: j.name, Parents: j.parents, Progress: n, Total: d.Size, Desc: &d})
}

// add reports that desc has been reached.
func (t *tracker) add(desc ocispec.Descriptor) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.jobLocked(desc)
	t.mu.Unlock()
}

// children records desc as the parent of kids, so their bars nest under
// it. It must be called before the kids are added.
func (t *tracker) children(desc ocispec.Descriptor, kids []ocispec.Descriptor) {
	if t == nil || len(kids) == 0 {
		return
	}
	name := refKey(desc)
	t.mu.Lock()
	for _, k := range kids {
		t.parents[k.Digest] = append(t.parents[k.Digest], name)
	}
	t.mu.Unlock()
}

// exists reports that desc was there already and was not moved.
func (t *tracker) exists(desc ocispec.Descriptor) {
	t.finish(desc, "already exists")
}

// complete reports that desc has been moved in full.
func (t *tracker) complete(desc ocispec.Descriptor) {
	t.finish(desc, "complete")
}

func (t *tracker) finish(desc ocispec.Descriptor, event string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	j := t.jobLocked(desc)
	if j.state >= jobDone {
		return
	}
	j.state = jobDone
	j.progress = desc.Size
	t.emitLocked(j, event, desc.Size)
}

// ingest records that ref is the ingest writing dgst, so that its status
// is reported as dgst's.
func (t *tracker) ingest(ref string, dgst digest.Digest) {
	if t == nil || ref == "" {
		return
	}
	t.mu.Lock()
	t.refs[ref] = dgst
	t.mu.Unlock()
}

// extracting records unpack progress of a layer; done marks it unpacked.
func (t *tracker) extracting(dgst digest.Digest, n int64, done bool) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	j, ok := t.jobs[dgst]
	if !ok || j.state == jobExtracted {
		return
	}
	j.state = jobExtracting
	if n > j.extract {
		j.extract = n
	}
	j.extDone = j.extDone || done
}

// update reports the bytes of the blobs in flight, given the ingests'
// statuses, and the unpacking of layers since the last update.
func (t *tracker) update(statuses []content.Status) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, st := range statuses {
		dgst, ok := t.refs[st.Ref]
		if !ok {
			continue
		}
		j, ok := t.jobs[dgst]
		if !ok || j.state > jobActive || st.Offset <= j.progress {
			continue
		}
		j.state = jobActive
		j.progress = st.Offset
		t.emitLocked(j, t.moving, st.Offset)
	}
	for _, j := range t.jobs {
		if j.state != jobExtracting {
			continue
		}
		if j.extDone {
			j.state = jobExtracted
			t.emitLocked(j, "extracted", j.desc.Size)
		} else if j.extract > j.reported {
			j.reported = j.extract
			t.emitLocked(j, "extracting", j.extract)
		}
	}
}

// start polls list every pollInterval until finish is called.
func (t *tracker) start(ctx context.Context, list func(context.Context) ([]content.Status, error)) {
	if t == nil {
		return
	}
	t.stop, t.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(t.done)
		tick := time.NewTicker(pollInterval)
		defer tick.Stop()
		poll := func() {
			st, err := list(ctx)
			if err != nil {
				log.G(ctx).WithError(err).Debug("transfer: listing ingests for progress")
			}
			t.update(st)
		}
		for {
			select {
			case <-tick.C:
				poll()
			case <-t.stop:
				poll()
				return
			}
		}
	}()
}

// finishPolling stops the poller after one last update, so that the
// events of a transfer all precede its final one.
func (t *tracker) finishPolling() {
	if t == nil || t.stop == nil {
		return
	}
	close(t.stop)
	<-t.done
	t.stop = nil
}

// trackingIngester notes which ingest writes which blob, so the tracker
// can match the store's statuses to blobs whatever refs the fetcher picks.
type trackingIngester struct {
	content.Ingester
	t *tracker
}

func (ti trackingIngester) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return nil, err
		}
	}
	ti.t.ingest(wo.Ref, wo.Desc.Digest)
	return ti.Ingester.Writer(ctx, opts...)
}
