// Package namespaces holds the namespaces service: the local service over
// the bolt metadata store, which announces changes as /namespaces/*
// events, and its gRPC adapter.
package namespaces

import (
	"context"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	eventstypes "github.com/llitfkitfk/containerd/api/events"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/metadata"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.ServicePlugin,
		ID:       services.NamespacesService,
		Requires: []plugin.Type{plugin.MetadataPlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			m, err := ic.Get(plugin.MetadataPlugin)
			if err != nil {
				return nil, err
			}
			return NewLocal(m.(*metadata.DB), ic.Events), nil
		},
	})
}

type localService struct {
	db        *metadata.DB
	publisher events.Publisher
}

// NewLocal returns the namespaces of db as a Manager that announces its
// changes through publisher.
func NewLocal(db *metadata.DB, publisher events.Publisher) namespaces.Manager {
	return &localService{db: db, publisher: publisher}
}

func (l *localService) Get(ctx context.Context, name string) (namespaces.Info, error) {
	var ns namespaces.Info
	err := l.db.View(func(tx *bolt.Tx) error {
		labels, err := metadata.NewNamespaceStore(tx).Labels(ctx, name)
		ns = namespaces.Info{Name: name, Labels: labels}
		return err
	})
	return ns, err
}

func (l *localService) List(ctx context.Context) ([]namespaces.Info, error) {
	var list []namespaces.Info
	err := l.db.View(func(tx *bolt.Tx) error {
		store := metadata.NewNamespaceStore(tx)
		names, err := store.List(ctx)
		if err != nil {
			return err
		}
		list = make([]namespaces.Info, 0, len(names))
		for _, name := range names {
			labels, err := store.Labels(ctx, name)
			if err != nil {
				return err
			}
			list = append(list, namespaces.Info{Name: name, Labels: labels})
		}
		return nil
	})
	return list, err
}

func (l *localService) Create(ctx context.Context, ns namespaces.Info) (namespaces.Info, error) {
	err := l.db.Update(func(tx *bolt.Tx) error {
		return metadata.NewNamespaceStore(tx).Create(ctx, ns.Name, ns.Labels)
	})
	if err != nil {
		return namespaces.Info{}, err
	}
	l.announce(ctx, ns.Name, "/namespaces/create", &eventstypes.NamespaceCreate{Name: ns.Name, Labels: ns.Labels})
	return ns, nil
}

func (l *localService) Update(ctx context.Context, ns namespaces.Info, fieldpaths ...string) (namespaces.Info, error) {
	if len(fieldpaths) == 0 {
		fieldpaths = []string{"labels"}
	}
	var updated namespaces.Info
	err := l.db.Update(func(tx *bolt.Tx) error {
		store := metadata.NewNamespaceStore(tx)
		current, err := store.Labels(ctx, ns.Name)
		if err != nil {
			return err
		}
		for _, path := range fieldpaths {
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
		updated = namespaces.Info{Name: ns.Name, Labels: labels}
		return err
	})
	if err != nil {
		return namespaces.Info{}, err
	}
	l.announce(ctx, ns.Name, "/namespaces/update", &eventstypes.NamespaceUpdate{Name: ns.Name, Labels: updated.Labels})
	return updated, nil
}

func (l *localService) Delete(ctx context.Context, name string) error {
	err := l.db.Update(func(tx *bolt.Tx) error {
		return metadata.NewNamespaceStore(tx).Delete(ctx, name)
	})
	if err != nil {
		return err
	}
	l.announce(ctx, name, "/namespaces/delete", &eventstypes.NamespaceDelete{Name: name})
	return nil
}

// announce publishes a change in the namespace it is about.
func (l *localService) announce(ctx context.Context, ns, topic string, ev events.Event) {
	events.Announce(namespaces.WithNamespace(ctx, ns), l.publisher, topic, ev)
}
