package testutil

import (
	"maps"
	"sync"

	digest "github.com/opencontainers/go-digest"
)

// MemLabels keeps content labels in memory: the label store of a
// content/local store made for a test, with no database behind it.
type MemLabels struct {
	mu sync.Mutex
	m  map[digest.Digest]map[string]string
}

// NewMemLabels is an empty label store.
func NewMemLabels() *MemLabels {
	return &MemLabels{m: map[digest.Digest]map[string]string{}}
}

// Get returns a copy of d's labels.
func (l *MemLabels) Get(d digest.Digest) (map[string]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.m[d]), nil
}

// Set replaces d's labels.
func (l *MemLabels) Set(d digest.Digest, labels map[string]string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[d] = maps.Clone(labels)
	return nil
}

// Update sets labels on d, removing those set to "", and returns d's
// labels afterwards.
func (l *MemLabels) Update(d digest.Digest, labels map[string]string) (map[string]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.m[d]
	if cur == nil {
		cur = map[string]string{}
	}
	for k, v := range labels {
		if v == "" {
			delete(cur, k)
		} else {
			cur[k] = v
		}
	}
	l.m[d] = cur
	return maps.Clone(cur), nil
}
