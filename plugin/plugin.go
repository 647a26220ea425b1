// Package plugin is how the daemon is put together: every part registers
// itself here from init() and the server loads them in dependency order.
package plugin

import (
	"errors"
	"fmt"
)

// Type groups plugins that offer the same kind of service; a plugin requires
// types, not particular plugins, so any implementation of a type will do.
type Type string

func (t Type) String() string { return string(t) }

// The types this daemon knows. Their names are containerd's, which clients
// see through introspection.
const (
	InternalPlugin  Type = "io.containerd.internal.v1"
	RuntimePluginV2 Type = "io.containerd.runtime.v2"
	ServicePlugin   Type = "io.containerd.service.v1"
	GRPCPlugin      Type = "io.containerd.grpc.v1"
	TTRPCPlugin     Type = "io.containerd.ttrpc.v1"
	SnapshotPlugin  Type = "io.containerd.snapshotter.v1"
	DiffPlugin      Type = "io.containerd.differ.v1"
	MetadataPlugin  Type = "io.containerd.metadata.v1"
	ContentPlugin   Type = "io.containerd.content.v1"
	GCPlugin        Type = "io.containerd.gc.v1"
	EventPlugin     Type = "io.containerd.event.v1"
	LeasePlugin     Type = "io.containerd.lease.v1"
	// TransferPlugin: transfer.Transferrer implementations, tried in
	// turn by the transfer service.
	TransferPlugin Type = "io.containerd.transfer.v1"
	// StreamingPlugin: the streaming.StreamManager ("manager").
	StreamingPlugin Type = "io.containerd.streaming.v1"
)

// All, as a requirement, puts a plugin after every plugin that does not also
// require All: the introspection service, say, which reports on the others.
const All Type = "*"

var (
	// ErrNoType is returned when a registration has no type.
	ErrNoType = errors.New("plugin: no type")
	// ErrNoPluginID is returned when a registration has no id.
	ErrNoPluginID = errors.New("plugin: no id")
	// ErrIDRegistered is returned when a type and id pair is registered twice.
	ErrIDRegistered = errors.New("plugin: id already registered")
	// ErrInvalidRequires is returned when All is mixed with other requirements.
	ErrInvalidRequires = errors.New("invalid requires")
	// ErrSkipPlugin is returned by an InitFn that declines to load, for
	// instance where the kernel lacks what the plugin needs. It is not a
	// failure. Clients tell the two apart by this message ("skip plugin").
	ErrSkipPlugin = errors.New("skip plugin")
	// ErrPluginNotFound is returned when a required plugin is absent.
	ErrPluginNotFound = errors.New("plugin: not found")
	// ErrPluginInitialized is returned when a plugin is added to a Set twice.
	ErrPluginInitialized = errors.New("plugin: already initialized")
)

// IsSkipPlugin reports whether err means the plugin declined to load.
func IsSkipPlugin(err error) bool { return errors.Is(err, ErrSkipPlugin) }

// Registration describes a plugin before it is loaded.
type Registration struct {
	Type Type
	ID   string
	// Config, if not nil, is a pointer to the plugin's default config; the
	// server decodes the plugin's section of the config file into it.
	Config interface{}
	// Requires lists the types that must be loaded before this plugin.
	Requires []Type
	// InitFn builds the plugin's instance.
	InitFn func(*InitContext) (interface{}, error)
}

// URI is the plugin's full name, "<type>.<id>", used in config sections,
// disabled_plugins and required_plugins.
func (r *Registration) URI() string { return r.Type.String() + "." + r.ID }

// Init runs the registration's InitFn and wraps the outcome in a Plugin.
func (r *Registration) Init(ic *InitContext) *Plugin {
	p, err := r.InitFn(ic)
	return &Plugin{Registration: r, Config: ic.Config, Meta: ic.Meta, instance: p, err: err}
}

func (r *Registration) validate() error {
	if r.Type == "" {
		return ErrNoType
	}
	if r.ID == "" {
		return ErrNoPluginID
	}
	if r.InitFn == nil {
		return fmt.Errorf("plugin %s: no InitFn", r.URI())
	}
	for _, req := range r.Requires {
		if req == All && len(r.Requires) != 1 {
			return fmt.Errorf("plugin %s: %w: %q must be its only requirement", r.URI(), ErrInvalidRequires, All)
		}
	}
	return nil
}
