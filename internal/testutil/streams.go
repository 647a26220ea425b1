package testutil

import (
	"context"
	"fmt"
	"sync"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/streaming"
)

// Streams connects a client's StreamCreator to a daemon's StreamGetter in
// process, over streaming.Pipe: what a client Creates, the daemon side
// Gets by the same id. For tests of transfer objects' MarshalAny and
// UnmarshalAny without a daemon.
type Streams struct {
	mu     sync.Mutex
	daemon map[string]streaming.Stream
}

// NewStreams returns an empty Streams.
func NewStreams() *Streams { return &Streams{daemon: map[string]streaming.Stream{}} }

// Create opens a stream named id and returns the client's end.
func (s *Streams) Create(_ context.Context, id string) (streaming.Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.daemon[id]; ok {
		return nil, fmt.Errorf("stream %q: %w", id, errdefs.ErrAlreadyExists)
	}
	client, daemon := streaming.Pipe()
	s.daemon[id] = daemon
	return client, nil
}

// Get returns the daemon's end of stream id.
func (s *Streams) Get(_ context.Context, id string) (streaming.Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.daemon[id]
	if !ok {
		return nil, fmt.Errorf("stream %q: %w", id, errdefs.ErrNotFound)
	}
	return st, nil
}

// IDs are the ids of the streams created, for tests that check which
// streams an object opened.
func (s *Streams) IDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.daemon))
	for id := range s.daemon {
		ids = append(ids, id)
	}
	return ids
}
