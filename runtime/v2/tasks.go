package v2

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/llitfkitfk/containerd/errdefs"
)

// taskList holds the tasks by namespace and id. An id is reserved while
// its task is being created, so that two creates of one id cannot race
// for its bundle, and while a deleted task's shim is let go, so that a new
// shim for the id cannot meet the old one's socket. A reserved id is taken
// but not visible.
type taskList struct {
	mu    sync.Mutex
	tasks map[string]map[string]*shimTask // nil while reserved
	// leaving holds the reservations of deleted tasks, each with a
	// channel closed once the id is free again.
	leaving map[taskKey]chan struct{}
}

type taskKey struct{ ns, id string }

func newTaskList() *taskList {
	return &taskList{tasks: map[string]map[string]*shimTask{}, leaving: map[taskKey]chan struct{}{}}
}

// reserve takes id in ns for a task about to be created. An id held by
// a task being created is refused; one held by a deleted task whose shim
// is still going is waited for.
func (l *taskList) reserve(ctx context.Context, ns, id string) error {
	for {
		l.mu.Lock()
		gone, ok := l.leaving[taskKey{ns, id}]
		if !ok {
			break // still locked
		}
		l.mu.Unlock()
		select {
		case <-gone:
		case <-ctx.Done():
			return fmt.Errorf("task %s: waiting for the previous task's shim to exit: %w", id, ctx.Err())
		}
	}
	defer l.mu.Unlock()
	ids := l.tasks[ns]
	if ids == nil {
		ids = map[string]*shimTask{}
		l.tasks[ns] = ids
	}
	if _, ok := ids[id]; ok {
		return fmt.Errorf("task %s: %w", id, errdefs.ErrAlreadyExists)
	}
	ids[id] = nil
	return nil
}

// release gives up a reservation that did not become a task.
func (l *taskList) release(ns, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.tasks[ns][id]; ok && s == nil {
		l.delete(ns, id)
	}
}

// add lists s, in place of its reservation if there is one.
func (l *taskList) add(s *shimTask) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ns, id := s.Namespace(), s.ID()
	ids := l.tasks[ns]
	if ids == nil {
		ids = map[string]*shimTask{}
		l.tasks[ns] = ids
	}
	if cur, ok := ids[id]; ok && cur != nil {
		return fmt.Errorf("task %s: %w", id, errdefs.ErrAlreadyExists)
	}
	ids[id] = s
	return nil
}

// leave unlists s, which its shim has deleted, and keeps its id reserved
// until the returned func is called. It returns nil if s is not listed,
// as when another delete took it first.
func (l *taskList) leave(s *shimTask) (free func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := taskKey{s.Namespace(), s.ID()}
	if cur, ok := l.tasks[key.ns][key.id]; !ok || cur != s {
		return nil
	}
	l.tasks[key.ns][key.id] = nil
	gone := make(chan struct{})
	l.leaving[key] = gone
	return func() {
		l.mu.Lock()
		delete(l.leaving, key)
		if cur, ok := l.tasks[key.ns][key.id]; ok && cur == nil {
			l.delete(key.ns, key.id)
		}
		l.mu.Unlock()
		close(gone)
	}
}

// unlist turns s back into a reservation, for a create that fails after
// listing it: the id stays taken until the caller has cleaned up.
func (l *taskList) unlist(s *shimTask) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.tasks[s.Namespace()][s.ID()]; ok && cur == s {
		l.tasks[s.Namespace()][s.ID()] = nil
	}
}

func (l *taskList) delete(ns, id string) {
	delete(l.tasks[ns], id)
	if len(l.tasks[ns]) == 0 {
		delete(l.tasks, ns)
	}
}

// listed returns the task listed as id in ns, nil if there is none or the
// id is only reserved.
func (l *taskList) listed(ns, id string) *shimTask {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tasks[ns][id]
}

func (l *taskList) get(ns, id string) (*shimTask, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.tasks[ns][id]; s != nil {
		return s, nil
	}
	return nil, fmt.Errorf("task %s: %w", id, errdefs.ErrNotFound)
}

// list returns the tasks of ns, or of every namespace when ns is empty,
// ordered by namespace and id.
func (l *taskList) list(ns string) []*shimTask {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*shimTask
	for n, ids := range l.tasks {
		if ns != "" && n != ns {
			continue
		}
		for _, s := range ids {
			if s != nil {
				out = append(out, s)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace() != out[j].Namespace() {
			return out[i].Namespace() < out[j].Namespace()
		}
		return out[i].ID() < out[j].ID()
	})
	return out
}
