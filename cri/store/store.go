// Package store holds the CRI plugin's in-memory view of its pod sandboxes
// and containers: what the kubelet asks about many times a second
// (ListContainers, ContainerStatus, ListPodSandbox), answered without a
// database read or a shim round trip.
//
// The durable record of each object is elsewhere: its containerd container
// record (labels, and the metadata in an extension, see Metadata) and, for
// containers, a status file the plugin writes on each state change. After a
// restart the plugin rebuilds these stores from them.
package store

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/llitfkitfk/containerd/errdefs"
)

// Store is a set of objects by id and by name, safe for concurrent use.
// Get takes a full id, or a prefix of one that matches a single object,
// as containerd does for crictl's short ids.
type Store[T any] struct {
	mu     sync.RWMutex
	byID   map[string]T
	names  map[string]string // name -> id
	nameOf func(T) (id, name string)
}

// New returns an empty store; key gives an object's id and name.
func New[T any](key func(T) (id, name string)) *Store[T] {
	return &Store[T]{byID: map[string]T{}, names: map[string]string{}, nameOf: key}
}

// Reserve claims name for id before the object exists, so that two
// concurrent creates of one name fail at once; the loser's error names the
// holder. Release undoes a reservation whose create failed.
func (s *Store[T]) Reserve(name, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if holder, ok := s.names[name]; ok && holder != id {
		return fmt.Errorf("name %q is reserved for %q: %w", name, holder, errdefs.ErrAlreadyExists)
	}
	s.names[name] = id
	return nil
}

// Release frees name if id holds it.
func (s *Store[T]) Release(name, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.names[name] == id {
		delete(s.names, name)
	}
}

// Add stores v; its name must be free or reserved for its id.
func (s *Store[T]) Add(v T) error {
	id, name := s.nameOf(v)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byID[id]; ok {
		return fmt.Errorf("%q: %w", id, errdefs.ErrAlreadyExists)
	}
	if holder, ok := s.names[name]; ok && holder != id {
		return fmt.Errorf("name %q is reserved for %q: %w", name, holder, errdefs.ErrAlreadyExists)
	}
	s.byID[id] = v
	s.names[name] = id
	return nil
}

// Get returns the object whose id is id or starts with it.
func (s *Store[T]) Get(id string) (T, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var zero T
	if id == "" {
		return zero, fmt.Errorf("empty id: %w", errdefs.ErrInvalidArgument)
	}
	if v, ok := s.byID[id]; ok {
		return v, nil
	}
	var found []string
	for full := range s.byID {
		if strings.HasPrefix(full, id) {
			found = append(found, full)
		}
	}
	switch len(found) {
	case 0:
		return zero, fmt.Errorf("%q: %w", id, errdefs.ErrNotFound)
	case 1:
		return s.byID[found[0]], nil
	}
	return zero, fmt.Errorf("id prefix %q matches %d objects: %w", id, len(found), errdefs.ErrInvalidArgument)
}

// List returns every object, ordered by id so that answers are stable.
func (s *Store[T]) List() []T {
	s.mu.RLock()
	ids := make([]string, 0, len(s.byID))
	for id := range s.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]T, 0, len(ids))
	for _, id := range ids {
		out = append(out, s.byID[id])
	}
	s.mu.RUnlock()
	return out
}

// Delete removes the object with the full id and frees its name.
func (s *Store[T]) Delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.byID[id]
	if !ok {
		return
	}
	_, name := s.nameOf(v)
	delete(s.byID, id)
	if s.names[name] == id {
		delete(s.names, name)
	}
}
