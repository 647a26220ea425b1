package plugin

import (
	"fmt"
	"strings"
	"sync"
)

// Registry holds registrations in the order they were made.
type Registry struct {
	mu    sync.Mutex
	regs  []*Registration
	byURI map[string]bool
}

var defaultRegistry Registry

// Register adds r to the daemon's registry. It is called from init(), so a
// bad registration is a programming error and panics.
func Register(r *Registration) {
	if err := defaultRegistry.Register(r); err != nil {
		panic(err)
	}
}

// Graph returns the daemon's registrations in load order; see Registry.Graph.
func Graph(disabled func(*Registration) bool) ([]*Registration, error) {
	return defaultRegistry.Graph(disabled)
}

// Registrations returns every registration in the daemon's registry.
func Registrations() []*Registration { return defaultRegistry.Registrations() }

// Register adds r, refusing an invalid or duplicate registration.
func (reg *Registry) Register(r *Registration) error {
	if err := r.validate(); err != nil {
		return err
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if reg.byURI == nil {
		reg.byURI = map[string]bool{}
	}
	if reg.byURI[r.URI()] {
		return fmt.Errorf("%s: %w", r.URI(), ErrIDRegistered)
	}
	reg.byURI[r.URI()] = true
	reg.regs = append(reg.regs, r)
	return nil
}

// Registrations returns a copy of the registrations in registration order.
func (reg *Registry) Registrations() []*Registration {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	return append([]*Registration(nil), reg.regs...)
}

// Graph orders the registrations that disabled does not reject so that every
// plugin comes after all plugins of the types it requires, and plugins that
// require All come last. Otherwise registration order is kept, so start-up
// is the same every time. A cycle of requirements is an error naming it.
//
// A disabled plugin is simply absent: whoever requires its type finds
// whatever else provides it, or nothing, and decides for itself.
func (reg *Registry) Graph(disabled func(*Registration) bool) ([]*Registration, error) {
	var enabled, last []*Registration
	for _, r := range reg.Registrations() {
		if disabled != nil && disabled(r) {
			continue
		}
		if len(r.Requires) == 1 && r.Requires[0] == All {
			last = append(last, r)
			continue
		}
		enabled = append(enabled, r)
	}
	byType := map[Type][]*Registration{}
	for _, r := range enabled {
		byType[r.Type] = append(byType[r.Type], r)
	}

	const (
		unvisited = iota
		visiting
		done
	)
	state := map[*Registration]int{}
	var (
		ordered []*Registration
		path    []string
		visit   func(r *Registration) error
	)
	visit = func(r *Registration) error {
		switch state[r] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("plugin dependency cycle: %s -> %s", strings.Join(path, " -> "), r.URI())
		}
		state[r] = visiting
		path = append(path, r.URI())
		for _, t := range r.Requires {
			for _, dep := range byType[t] {
				if dep == r {
					continue // a plugin may require its own type's siblings
				}
				if err := visit(dep); err != nil {
					return err
				}
			}
		}
		path = path[:len(path)-1]
		state[r] = done
		ordered = append(ordered, r)
		return nil
	}
	for _, r := range enabled {
		if err := visit(r); err != nil {
			return nil, err
		}
	}
	return append(ordered, last...), nil
}
