package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
)

// eventBufferSize is how many events a GetContainerEvents stream may lag
// behind before it is dropped. The kubelet relists when its stream ends, so
// dropping a stream loses nothing; blocking would stall every container
// operation behind one slow reader.
const eventBufferSize = 1024

// eventBroadcaster sends container and sandbox events to every
// GetContainerEvents stream.
type eventBroadcaster struct {
	mu   sync.Mutex
	subs map[*eventSubscriber]struct{}
}

// eventSubscriber is one stream's queue; dropped is closed when the stream
// fell behind and was cut off.
type eventSubscriber struct {
	ch      chan *runtime.ContainerEventResponse
	dropped chan struct{}
}

func newEventBroadcaster() *eventBroadcaster {
	return &eventBroadcaster{subs: map[*eventSubscriber]struct{}{}}
}

// subscribe adds a stream; it receives every event emitted from now on
// until unsubscribe, or until it lags eventBufferSize events behind.
func (b *eventBroadcaster) subscribe(buffer int) *eventSubscriber {
	sub := &eventSubscriber{
		ch:      make(chan *runtime.ContainerEventResponse, buffer),
		dropped: make(chan struct{}),
	}
	b.mu.Lock()
	b.subs[sub] = struct{}{}
	b.mu.Unlock()
	return sub
}

func (b *eventBroadcaster) unsubscribe(sub *eventSubscriber) {
	b.mu.Lock()
	delete(b.subs, sub)
	b.mu.Unlock()
}

// emit sends ev to the streams; it never blocks on a slow one: a stream
// whose queue is full is dropped.
func (b *eventBroadcaster) emit(ev *runtime.ContainerEventResponse) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for sub := range b.subs {
		select {
		case sub.ch <- ev:
		default:
			delete(b.subs, sub)
			close(sub.dropped)
		}
	}
}

// GetContainerEvents streams container and sandbox lifecycle events (the
// kubelet's evented PLEG) until the client goes; a client too slow to keep
// up is cut off with ResourceExhausted, to resubscribe and relist.
func (s *Service) GetContainerEvents(r *runtime.GetEventsRequest, stream runtime.RuntimeService_GetContainerEventsServer) error {
	return s.events.serve(stream.Context(), stream.Send)
}

// serve sends the events to send until ctx ends or the stream is dropped.
func (b *eventBroadcaster) serve(ctx context.Context, send func(*runtime.ContainerEventResponse) error) error {
	sub := b.subscribe(eventBufferSize)
	defer b.unsubscribe(sub)
	for {
		// Events already queued go out before a drop is reported.
		select {
		case ev := <-sub.ch:
			if err := send(ev); err != nil {
				return err
			}
			continue
		default:
		}
		select {
		case ev := <-sub.ch:
			if err := send(ev); err != nil {
				return err
			}
		case <-sub.dropped:
			return grpcError(fmt.Errorf("container events stream fell %d events behind and was dropped: %w", eventBufferSize, errdefs.ErrResourceExhausted))
		case <-ctx.Done():
			return nil
		}
	}
}

// emitContainerEvent tells the event streams about a change of a
// container, with its sandbox's status and the statuses of the sandbox's
// containers as containerd sends them.
func (s *Service) emitContainerEvent(ctx context.Context, c *store.Container, typ runtime.ContainerEventType) {
	ev := &runtime.ContainerEventResponse{
		ContainerId:        c.Metadata.ID,
		ContainerEventType: typ,
		CreatedAt:          time.Now().UnixNano(),
	}
	if sb, err := s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: c.Metadata.SandboxID}); err == nil {
		ev.PodSandboxStatus = sb.GetStatus()
	} else {
		log.G(ctx).WithError(err).WithField("sandbox", c.Metadata.SandboxID).Debug("no sandbox status for a container event")
	}
	ev.ContainersStatuses = s.sandboxContainerStatuses(c.Metadata.SandboxID)
	s.events.emit(ev)
}

// sandboxContainerStatuses are the statuses of a sandbox's containers,
// for its events.
func (s *Service) sandboxContainerStatuses(sandboxID string) []*runtime.ContainerStatus {
	var out []*runtime.ContainerStatus
	for _, c := range s.containers.List() {
		if c.Metadata.SandboxID == sandboxID {
			out = append(out, s.criContainerStatus(c, nil))
		}
	}
	return out
}
