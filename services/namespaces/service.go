// Package namespaces serves the namespaces API over the bolt metadata store
// and announces changes as /namespaces/* events.
package namespaces

import (
	"context"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	eventstypes "github.com/llitfkitfk/containerd/api/events"
	api "github.com/llitfkitfk/containerd/api/services/namespaces/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/metadata"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/plugin"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.GRPCPlugin,
		ID:       "namespaces",
		Requires: []plugin.Type{plugin.MetadataPlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			m, err := ic.Get(plugin.MetadataPlugin)
			if err != nil {
				return nil, err
			}
			return &service{db: m.(*metadata.DB), publisher: ic.Events}, nil
		},
	})
}

type service struct {
	api.UnimplementedNamespacesServer
	db        *metadata.DB
	publisher events.Publisher
}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterNamespacesServer(server, s)
	return nil
}

func (s *service) Get(ctx context.Context, req *api.GetNamespaceRequest) (*api.GetNamespaceResponse, error) {
	var resp api.GetNamespaceResponse
	err := s.db.View(func(tx *bolt.Tx) error {
		labels, err := metadata.NewNamespaceStore(tx).Labels(ctx, req.Name)
		if err != nil {
			return err
		}
		resp.Namespace = &api.Namespace{Name: req.Name, Labels: labels}
		return nil
	})
	return &resp, errdefs.ToGRPC(err)
}

func (s *service) List(ctx context.Context, req *api.ListNamespacesRequest) (*api.ListNamespacesResponse, error) {
	var resp api.ListNamespacesResponse
	err := s.db.View(func(tx *bolt.Tx) error {
		store := metadata.NewNamespaceStore(tx)
		names, err := store.List(ctx)
		if err != nil {
			return err
		}
		for _, name := range names {
			labels, err := store.Labels(ctx, name)
			if err != nil {
				return err
			}
			resp.Namespaces = append(resp.Namespaces, &api.Namespace{Name: name, Labels: labels})
		}
		return nil
	})
	return &resp, errdefs.ToGRPC(err)
}

func (s *service) Create(ctx context.Context, req *api.CreateNamespaceRequest) (*api.CreateNamespaceResponse, error) {
	ns := req.GetNamespace()
	if ns == nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("namespace is required: %w", errdefs.ErrInvalidArgument))
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return metadata.NewNamespaceStore(tx).Create(ctx, ns.Name, ns.Labels)
	})
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	s.publish(ctx, ns.Name, "/namespaces/create", &eventstypes.NamespaceCreate{Name: ns.Name, Labels: ns.Labels})
	return &api.CreateNamespaceResponse{Namespace: ns}, nil
}

// Update changes labels: with no field paths, or the path "labels", the
// labels are replaced; "labels.<key>" sets (or, if empty, removes) one.
func (s *service) Update(ctx context.Context, req *api.UpdateNamespaceRequest) (*api.UpdateNamespaceResponse, error) {
	ns := req.GetNamespace()
	if ns == nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("namespace is required: %w", errdefs.ErrInvalidArgument))
	}
	var resp api.UpdateNamespaceResponse
	err := s.db.Update(func(tx *bolt.Tx) error {
		store := metadata.NewNamespaceStore(tx)
		current, err := store.Labels(ctx, ns.Name)
		if err != nil {
			return err
		}
		paths := req.GetUpdateMask().GetPaths()
		if len(paths) == 0 {
			paths = []string{"labels"}
		}
		for _, path := range paths {
			switch {
			case path == "labels":
				for k := range current {
					if err := store.SetLabel(ctx, ns.Name, k, ""); err != nil {
						return err
					}
				}
				for k, v := range ns.Labels {
					if err := store.SetLabel(ctx, ns.Name, k, v); err != nil {
						return err
					}
				}
			case strings.HasPrefix(path, "labels."):
				key := strings.TrimPrefix(path, "labels.")
				if err := store.SetLabel(ctx, ns.Name, key, ns.Labels[key]); err != nil {
					return err
				}
			default:
				return fmt.Errorf("cannot update %q field on namespace %q: %w", path, ns.Name, errdefs.ErrInvalidArgument)
			}
		}
		labels, err := store.Labels(ctx, ns.Name)
		if err != nil {
			return err
		}
		resp.Namespace = &api.Namespace{Name: ns.Name, Labels: labels}
		return nil
	})
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	s.publish(ctx, ns.Name, "/namespaces/update", &eventstypes.NamespaceUpdate{Name: ns.Name, Labels: resp.Namespace.Labels})
	return &resp, nil
}

func (s *service) Delete(ctx context.Context, req *api.DeleteNamespaceRequest) (*emptypb.Empty, error) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return metadata.NewNamespaceStore(tx).Delete(ctx, req.Name)
	})
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	s.publish(ctx, req.Name, "/namespaces/delete", &eventstypes.NamespaceDelete{Name: req.Name})
	return &emptypb.Empty{}, nil
}

// publish announces a change in the namespace it is about.
func (s *service) publish(ctx context.Context, ns, topic string, ev events.Event) {
	events.Announce(namespaces.WithNamespace(ctx, ns), s.publisher, topic, ev)
}
