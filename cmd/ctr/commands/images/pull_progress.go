package images

import (
	gocontext "context"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/remotes"
	"github.com/llitfkitfk/containerd/transfer"
)

// fetchPollEvery is how often a client-side fetch's progress is read
// from the content store, as containerd's ctr does.
const fetchPollEvery = 100 * time.Millisecond

// fetchProgress reports a client-side fetch (pull --local, and the
// fallback for daemons without a transfer service) as transfer progress,
// so that it shows as a pull through the daemon does: each descriptor the
// fetch's handlers see is waiting, downloading (from the content store's
// active ingests) or complete, under the image's name. handler goes into
// the fetch's handlers; stop reports the last state and ends the polling.
func fetchProgress(ctx gocontext.Context, cs content.Store, name string, pf transfer.ProgressFunc) (handler images.HandlerFunc, stop func()) {
	fp := &fetchProgressor{cs: cs, name: name, pf: pf, state: map[digest.Digest]string{}}
	handler = func(ctx gocontext.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		fp.mu.Lock()
		defer fp.mu.Unlock()
		if _, ok := fp.state[desc.Digest]; !ok {
			fp.state[desc.Digest] = ""
			fp.descs = append(fp.descs, desc)
		}
		return nil, nil
	}
	pf(transfer.Progress{Event: "fetching image content", Name: name})
	ctx, cancel := gocontext.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(fetchPollEvery)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				fp.poll(ctx)
			case <-ctx.Done():
				return
			}
		}
	}()
	stop = func() {
		cancel()
		<-stopped
		fp.poll(gocontext.WithoutCancel(ctx))
	}
	return handler, stop
}

type fetchProgressor struct {
	cs   content.Store
	name string
	pf   transfer.ProgressFunc

	mu    sync.Mutex
	descs []ocispec.Descriptor
	state map[digest.Digest]string // the last event reported, "" for none
}

// poll reports each descriptor's state: downloading while its ingest is
// active, complete once the store has it, waiting until then.
func (fp *fetchProgressor) poll(ctx gocontext.Context) {
	active := map[string]content.Status{}
	if statuses, err := fp.cs.ListStatuses(ctx); err == nil {
		for _, st := range statuses {
			active[st.Ref] = st
		}
	}
	fp.mu.Lock()
	descs := append([]ocispec.Descriptor(nil), fp.descs...)
	fp.mu.Unlock()
	for _, desc := range descs {
		fp.mu.Lock()
		last := fp.state[desc.Digest]
		fp.mu.Unlock()
		if last == "complete" {
			continue
		}
		key := remotes.MakeRefKey(ctx, desc)
		p := transfer.Progress{Name: key, Parents: []string{fp.name}, Total: desc.Size, Desc: &desc}
		if st, ok := active[key]; ok {
			p.Event, p.Progress = "downloading", st.Offset
			if st.Total > 0 {
				p.Total = st.Total
			}
		} else if _, err := fp.cs.Info(ctx, desc.Digest); err == nil {
			p.Event, p.Progress = "complete", desc.Size
		} else {
			p.Event = "waiting"
		}
		fp.mu.Lock()
		fp.state[desc.Digest] = p.Event
		fp.mu.Unlock()
		fp.pf(p)
	}
}
