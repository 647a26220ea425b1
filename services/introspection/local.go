// Package introspection holds the introspection service: the local
// service, which tells which plugins the daemon loaded, with what they
// export and why any failed, and the daemon's identity, and its gRPC
// adapter. Clients read snapshotter platforms from it before they unpack
// images.
package introspection

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/google/uuid"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/filters"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type: plugin.ServicePlugin,
		ID:   services.IntrospectionService,
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			return NewLocal(ic), nil
		},
	})
}

// Local is the introspection service.
type Local struct {
	// ic gives every plugin loaded, at the time of the call: those loaded
	// after this one too.
	ic *plugin.InitContext

	uuidOnce sync.Once
	uuid     string
	uuidErr  error
}

// NewLocal returns the introspection service of the plugins ic knows; the
// daemon's identity is kept in ic's root.
func NewLocal(ic *plugin.InitContext) *Local {
	return &Local{ic: ic}
}

// ServerInfo is the daemon's identity.
type ServerInfo struct {
	// UUID is made once and kept, so that it survives restarts.
	UUID string
	PID  int
	// PIDNS is the inode of the daemon's pid namespace.
	PIDNS uint64
}

// Plugins returns the plugins, failed ones included, in load order, that
// match any of the filters (fields: type, id, platforms, as
// "os/arch[/variant]" matched one at a time, capabilities,
// exports.<key>).
func (l *Local) Plugins(ctx context.Context, fs ...string) ([]*plugin.Plugin, error) {
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return nil, err
	}
	var out []*plugin.Plugin
	for _, p := range l.ic.GetAll() {
		if filter.Match(adapt(p)) {
			out = append(out, p)
		}
	}
	return out, nil
}

// Plugin returns the plugin typ.id, or NotFound.
func (l *Local) Plugin(ctx context.Context, typ, id string) (*plugin.Plugin, error) {
	for _, p := range l.ic.GetAll() {
		if string(p.Registration.Type) == typ && p.Registration.ID == id {
			return p, nil
		}
	}
	return nil, fmt.Errorf("plugin %s.%s: %w", typ, id, errdefs.ErrNotFound)
}

// Server returns the daemon's identity.
//
// It is kept in <root>/uuid, where containerd 2.x keeps it, so that a
// daemon put in containerd's place on its root keeps its identity. This
// daemon kept it in the introspection gRPC plugin's directory before the
// local service took over; an identity found only there is carried over.
func (l *Local) Server(ctx context.Context) (ServerInfo, error) {
	l.uuidOnce.Do(func() {
		root := filepath.Dir(l.ic.Root) // the plugin's directory is <root>/<type>.<id>
		l.uuid, l.uuidErr = loadUUID(filepath.Join(root, "uuid"), filepath.Join(root, "io.containerd.grpc.v1.introspection", "uuid"))
	})
	if l.uuidErr != nil {
		return ServerInfo{}, l.uuidErr
	}
	return ServerInfo{UUID: l.uuid, PID: os.Getpid(), PIDNS: pidNamespace()}, nil
}

// loadUUID returns the daemon's identity kept at path, so that it survives
// restarts: the one at previous if there is none there yet, or a new one.
func loadUUID(path, previous string) (string, error) {
	id, err := readUUID(path)
	if err != nil || id != "" {
		return id, err
	}
	if id, _ = readUUID(previous); id == "" {
		id = uuid.NewString()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id), 0o644); err != nil {
		return "", fmt.Errorf("write server uuid: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("write server uuid: %w", err)
	}
	return id, nil
}

// readUUID returns the identity in the file at path, or "" when there is
// none: no file, or a torn or edited one, which gets a new identity rather
// than stop the daemon.
func readUUID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read server uuid: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if _, err := uuid.Parse(id); err != nil {
		return "", nil
	}
	return id, nil
}

func pidNamespace() uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/pid", &st); err != nil {
		return 0
	}
	return st.Ino
}

// adapt exposes a plugin to filters: type, id, platforms (matched one at a
// time as "os/arch[/variant]"), capabilities and exports.<key>.
func adapt(p *plugin.Plugin) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 0 {
			return "", false
		}
		switch fieldpath[0] {
		case "type":
			return string(p.Registration.Type), true
		case "id":
			return p.Registration.ID, true
		case "exports":
			if len(fieldpath) > 1 && p.Meta != nil {
				v, ok := p.Meta.Exports[strings.Join(fieldpath[1:], ".")]
				return v, ok
			}
		case "capabilities":
			if p.Meta == nil {
				return "", false
			}
			return strings.Join(p.Meta.Capabilities, ","), len(p.Meta.Capabilities) > 0
		case "platforms":
			if p.Meta == nil {
				return "", false
			}
			var names []string
			for _, pl := range p.Meta.Platforms {
				name := pl.OS + "/" + pl.Architecture
				if pl.Variant != "" {
					name += "/" + pl.Variant
				}
				names = append(names, name)
			}
			return strings.Join(names, ","), len(names) > 0
		}
		return "", false
	})
}
