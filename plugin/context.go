package plugin

import (
	"context"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/events"
)

// InitContext is what a plugin is given to build itself.
type InitContext struct {
	Context context.Context
	// Root and State are the plugin's own directories,
	// "<root>/<type>.<id>" and "<state>/<type>.<id>"; created on demand.
	Root  string
	State string
	// Config is the plugin's decoded config (its Registration.Config).
	Config interface{}
	// Address and TTRPCAddress are where the daemon serves, for plugins
	// that hand them to child processes such as shims.
	Address      string
	TTRPCAddress string
	// Events is the daemon's one event exchange.
	Events Exchange
	// Meta is filled in by the plugin and reported by introspection.
	Meta *Meta

	plugins *Set
}

// NewContext returns an InitContext for a plugin whose required plugins are
// found in plugins.
func NewContext(ctx context.Context, r *Registration, plugins *Set, root, state string) *InitContext {
	return &InitContext{
		Context: ctx,
		Root:    root + "/" + r.URI(),
		State:   state + "/" + r.URI(),
		Meta:    &Meta{Exports: map[string]string{}},
		plugins: plugins,
	}
}

// Get returns the instance of the first loaded plugin of type t.
func (ic *InitContext) Get(t Type) (interface{}, error) {
	return ic.plugins.Get(t)
}

// GetByID returns the instance of plugin t.id.
func (ic *InitContext) GetByID(t Type, id string) (interface{}, error) {
	ps, ok := ic.plugins.byTypeAndID[t]
	if !ok {
		return nil, fmt.Errorf("no plugins of type %s: %w", t, ErrPluginNotFound)
	}
	p, ok := ps[id]
	if !ok {
		return nil, fmt.Errorf("no plugin %s.%s: %w", t, id, ErrPluginNotFound)
	}
	return p.Instance()
}

// GetByType returns every plugin of type t that has been loaded, keyed by id,
// including those that failed, so a caller can report them.
func (ic *InitContext) GetByType(t Type) (map[string]*Plugin, error) {
	ps, ok := ic.plugins.byTypeAndID[t]
	if !ok {
		return nil, fmt.Errorf("no plugins of type %s: %w", t, ErrPluginNotFound)
	}
	return ps, nil
}

// GetAll returns every plugin loaded so far, in load order.
func (ic *InitContext) GetAll() []*Plugin { return ic.plugins.All() }

// Exchange is what plugins see of the daemon's event exchange.
type Exchange interface {
	events.Publisher
	events.Forwarder
	events.Subscriber
}

// Meta is what a plugin tells clients about itself.
type Meta struct {
	Platforms    []ocispec.Platform
	Exports      map[string]string
	Capabilities []string
}

// Plugin is a loaded plugin: its instance, or the error that stopped it.
type Plugin struct {
	Registration *Registration
	Config       interface{}
	Meta         *Meta

	instance interface{}
	err      error
}

// Err returns the error the plugin's InitFn returned, if any.
func (p *Plugin) Err() error { return p.err }

// Instance returns the plugin's instance, or its init error.
func (p *Plugin) Instance() (interface{}, error) { return p.instance, p.err }

// Set is the plugins loaded so far, in load order.
type Set struct {
	ordered     []*Plugin
	byTypeAndID map[Type]map[string]*Plugin
}

// NewPluginSet returns an empty Set.
func NewPluginSet() *Set {
	return &Set{byTypeAndID: map[Type]map[string]*Plugin{}}
}

// Add records a loaded plugin, failed or not.
func (ps *Set) Add(p *Plugin) error {
	ids, ok := ps.byTypeAndID[p.Registration.Type]
	if !ok {
		ids = map[string]*Plugin{}
		ps.byTypeAndID[p.Registration.Type] = ids
	}
	if _, ok := ids[p.Registration.ID]; ok {
		return fmt.Errorf("%s: %w", p.Registration.URI(), ErrPluginInitialized)
	}
	ids[p.Registration.ID] = p
	ps.ordered = append(ps.ordered, p)
	return nil
}

// Get returns the instance of the first plugin of type t that loaded
// without error.
func (ps *Set) Get(t Type) (interface{}, error) {
	for _, p := range ps.ordered {
		if p.Registration.Type == t && p.err == nil {
			return p.instance, nil
		}
	}
	return nil, fmt.Errorf("no loaded plugin of type %s: %w", t, ErrPluginNotFound)
}

// All returns the plugins in load order.
func (ps *Set) All() []*Plugin { return append([]*Plugin(nil), ps.ordered...) }
