package local

import (
	"fmt"
	"time"

	"github.com/llitfkitfk/containerd/errdefs"
)

// tryLock reserves ref for one writer. The lock is in memory only: after a
// restart nothing holds an ingest, so a crashed writer cannot wedge it.
func (s *store) tryLock(ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if since, ok := s.locks[ref]; ok {
		// The age tells a stuck writer from plain contention.
		return fmt.Errorf("ref %s locked for %s (since %s): %w",
			ref, time.Since(since).Round(time.Millisecond), since.Format(time.RFC3339), errdefs.ErrUnavailable)
	}
	s.locks[ref] = time.Now()
	return nil
}

func (s *store) unlock(ref string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.locks, ref)
}
