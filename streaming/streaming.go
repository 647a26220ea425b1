// Package streaming names the bidirectional streams of Any messages that
// clients open through the streaming service so that other calls (a
// transfer) can use them by id: to send progress, to ask for credentials,
// to carry the bytes of an archive.
package streaming

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/namespaces"
)

// Stream is one open stream. Send and Recv may be called from two
// goroutines at once; Send from several is serialised by the stream.
type Stream interface {
	// Send sends a message to the peer.
	Send(*anypb.Any) error
	// Recv returns the next message from the peer; io.EOF once the peer
	// has finished sending.
	Recv() (*anypb.Any, error)
	// Close ends the stream: on the daemon's side the peer sees the end
	// of the stream, on a client's side the daemon does.
	Close() error
}

// StreamGetter finds a stream a client opened.
type StreamGetter interface {
	// Get returns the stream id of the context's namespace;
	// errdefs.ErrNotFound if there is none.
	Get(ctx context.Context, id string) (Stream, error)
}

// StreamManager holds the streams clients opened, by namespace and id.
type StreamManager interface {
	StreamGetter
	// Register makes s available under id in the context's namespace;
	// errdefs.ErrAlreadyExists if the id is taken.
	Register(ctx context.Context, id string, s Stream) error
}

// StreamCreator opens streams to a daemon (the client's side).
type StreamCreator interface {
	Create(ctx context.Context, id string) (Stream, error)
}

// MarshalAny wraps m in an Any whose type URL is the message's full name
// with no "type.googleapis.com/" prefix, as containerd's clients write
// them; readers accept either form.
func MarshalAny(m proto.Message) (*anypb.Any, error) {
	value, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &anypb.Any{TypeUrl: string(m.ProtoReflect().Descriptor().FullName()), Value: value}, nil
}

// Done is implemented by a Stream that can end without being closed (its
// client went away); the manager then forgets it.
type Done interface {
	Done() <-chan struct{}
}

// Manager is the daemon's StreamManager. Streams are kept until they are
// closed or, for those implementing Done, until their client goes away.
type Manager struct {
	mu      sync.Mutex
	streams map[key]*managed
}

type key struct{ namespace, id string }

// maxIDLength bounds what a client can make the daemon keep per stream;
// clients' ids are a prefix, a number and a few random characters.
const maxIDLength = 256

// NewManager returns an empty Manager.
func NewManager() *Manager {
	return &Manager{streams: map[key]*managed{}}
}

// Register makes s available under id in the context's namespace (none is
// a namespace of its own, as upstream).
func (m *Manager) Register(ctx context.Context, id string, s Stream) error {
	if id == "" || len(id) > maxIDLength {
		return fmt.Errorf("stream id must have 1 to %d bytes, has %d: %w", maxIDLength, len(id), errdefs.ErrInvalidArgument)
	}
	ns, _ := namespaces.Namespace(ctx)
	k := key{ns, id}
	ms := &managed{Stream: s, manager: m, key: k}
	m.mu.Lock()
	if _, ok := m.streams[k]; ok {
		m.mu.Unlock()
		return fmt.Errorf("stream %q: %w", id, errdefs.ErrAlreadyExists)
	}
	m.streams[k] = ms
	m.mu.Unlock()
	if d, ok := s.(Done); ok {
		go func() {
			<-d.Done()
			m.forget(ms)
		}()
	}
	return nil
}

// Get returns the stream id of the context's namespace.
func (m *Manager) Get(ctx context.Context, id string) (Stream, error) {
	ns, _ := namespaces.Namespace(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	ms, ok := m.streams[key{ns, id}]
	if !ok {
		return nil, fmt.Errorf("stream %q: %w", id, errdefs.ErrNotFound)
	}
	return ms, nil
}

// Len is the number of streams held, for tests and debugging.
func (m *Manager) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.streams)
}

// forget drops ms, unless its id has since been taken by another stream.
func (m *Manager) forget(ms *managed) {
	m.mu.Lock()
	if m.streams[ms.key] == ms {
		delete(m.streams, ms.key)
	}
	m.mu.Unlock()
}

// managed is a registered stream; closing it also unregisters it.
type managed struct {
	Stream
	manager *Manager
	key     key
	once    sync.Once
	err     error
}

func (ms *managed) Close() error {
	ms.once.Do(func() {
		ms.manager.forget(ms)
		ms.err = ms.Stream.Close()
	})
	return ms.err
}

// ErrClosed is returned by the streams of Pipe once closed.
var ErrClosed = errors.New("stream closed")
