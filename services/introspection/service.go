// Package introspection tells clients which plugins the daemon loaded, with
// what they export and why any failed; clients read snapshotter platforms
// from it before they unpack images.
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
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	api "github.com/llitfkitfk/containerd/api/services/introspection/v1"
	"github.com/llitfkitfk/containerd/api/types"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/filters"
	"github.com/llitfkitfk/containerd/plugin"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type: plugin.GRPCPlugin,
		ID:   "introspection",
		// After every other plugin, so that all of them are there to report.
		Requires: []plugin.Type{plugin.All},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			return &service{ic: ic}, nil
		},
	})
}

type service struct {
	api.UnimplementedIntrospectionServer
	ic *plugin.InitContext

	uuidOnce sync.Once
	uuid     string
	uuidErr  error
}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterIntrospectionServer(server, s)
	return nil
}

func (s *service) Plugins(ctx context.Context, req *api.PluginsRequest) (*api.PluginsResponse, error) {
	filter, err := filters.ParseAll(req.Filters...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	var resp api.PluginsResponse
	for _, p := range s.ic.GetAll() {
		pb := pluginToPB(p)
		if filter.Match(adapt(pb)) {
			resp.Plugins = append(resp.Plugins, pb)
		}
	}
	return &resp, nil
}

func (s *service) PluginInfo(ctx context.Context, req *api.PluginInfoRequest) (*api.PluginInfoResponse, error) {
	for _, p := range s.ic.GetAll() {
		if string(p.Registration.Type) != req.Type || p.Registration.ID != req.Id {
			continue
		}
		if req.Options != nil {
			return nil, errdefs.ToGRPC(fmt.Errorf("plugin %s.%s takes no info options: %w", req.Type, req.Id, errdefs.ErrNotImplemented))
		}
		return &api.PluginInfoResponse{Plugin: pluginToPB(p)}, nil
	}
	return nil, errdefs.ToGRPC(fmt.Errorf("plugin %s.%s: %w", req.Type, req.Id, errdefs.ErrNotFound))
}

func (s *service) Server(ctx context.Context, _ *emptypb.Empty) (*api.ServerResponse, error) {
	s.uuidOnce.Do(func() { s.uuid, s.uuidErr = loadUUID(filepath.Join(s.ic.Root, "uuid")) })
	if s.uuidErr != nil {
		return nil, errdefs.ToGRPC(s.uuidErr)
	}
	return &api.ServerResponse{
		Uuid:  s.uuid,
		Pid:   uint64(os.Getpid()),
		Pidns: pidNamespace(),
	}, nil
}

// loadUUID returns the daemon's identity, made once and kept in its root so
// that it survives restarts.
func loadUUID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if _, perr := uuid.Parse(id); perr == nil {
			return id, nil
		}
		// A torn or edited file: make a new identity rather than fail.
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read server uuid: %w", err)
	}
	id := uuid.NewString()
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

func pidNamespace() uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/pid", &st); err != nil {
		return 0
	}
	return st.Ino
}

func pluginToPB(p *plugin.Plugin) *api.Plugin {
	pb := &api.Plugin{
		Type: p.Registration.Type.String(),
		Id:   p.Registration.ID,
	}
	for _, r := range p.Registration.Requires {
		pb.Requires = append(pb.Requires, r.String())
	}
	if p.Meta != nil {
		pb.Platforms = platformsToPB(p.Meta.Platforms)
		pb.Exports = p.Meta.Exports
		pb.Capabilities = p.Meta.Capabilities
	}
	if err := p.Err(); err != nil {
		pb.InitErr = &rpcstatus.Status{Code: int32(errdefs.Code(err)), Message: err.Error()}
	}
	return pb
}

func platformsToPB(ps []ocispec.Platform) []*types.Platform {
	out := make([]*types.Platform, 0, len(ps))
	for _, p := range ps {
		out = append(out, &types.Platform{
			Os:           p.OS,
			Architecture: p.Architecture,
			Variant:      p.Variant,
			OsVersion:    p.OSVersion,
			OsFeatures:   p.OSFeatures,
		})
	}
	return out
}

// adapt exposes a plugin to filters: type, id, platforms (matched one at a
// time as "os/arch[/variant]"), capabilities and exports.<key>.
func adapt(p *api.Plugin) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 0 {
			return "", false
		}
		switch fieldpath[0] {
		case "type":
			return p.Type, len(p.Type) > 0
		case "id":
			return p.Id, len(p.Id) > 0
		case "exports":
			if len(fieldpath) > 1 {
				v, ok := p.Exports[strings.Join(fieldpath[1:], ".")]
				return v, ok
			}
		case "capabilities":
			return strings.Join(p.Capabilities, ","), len(p.Capabilities) > 0
		case "platforms":
			var names []string
			for _, pl := range p.Platforms {
				name := pl.Os + "/" + pl.Architecture
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
