// Package containers holds the containers service: the local service over
// the daemon's namespaced container store, which announces changes as
// /containers/* events, and its gRPC adapter.
package containers

import (
	"context"

	eventstypes "github.com/llitfkitfk/containerd/api/events"
	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/metadata"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.ServicePlugin,
		ID:       services.ContainersService,
		Requires: []plugin.Type{plugin.MetadataPlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			m, err := ic.Get(plugin.MetadataPlugin)
			if err != nil {
				return nil, err
			}
			return NewLocal(metadata.NewContainerStore(m.(*metadata.DB)), ic.Events), nil
		},
	})
}

// localService is a containers.Store that announces every change.
type localService struct {
	containers.Store
	publisher events.Publisher
}

// NewLocal returns store as the containers service: changes are announced
// through publisher.
func NewLocal(store containers.Store, publisher events.Publisher) containers.Store {
	return &localService{Store: store, publisher: publisher}
}

func (l *localService) Create(ctx context.Context, c containers.Container) (containers.Container, error) {
	created, err := l.Store.Create(ctx, c)
	if err != nil {
		return containers.Container{}, err
	}
	events.Announce(ctx, l.publisher, "/containers/create", &eventstypes.ContainerCreate{
		Id:    created.ID,
		Image: created.Image,
		Runtime: &eventstypes.ContainerCreate_Runtime{
			Name:    created.Runtime.Name,
			Options: created.Runtime.Options,
		},
	})
	return created, nil
}

func (l *localService) Update(ctx context.Context, c containers.Container, fieldpaths ...string) (containers.Container, error) {
	updated, err := l.Store.Update(ctx, c, fieldpaths...)
	if err != nil {
		return containers.Container{}, err
	}
	events.Announce(ctx, l.publisher, "/containers/update", &eventstypes.ContainerUpdate{
		Id:          updated.ID,
		Image:       updated.Image,
		Labels:      updated.Labels,
		SnapshotKey: updated.SnapshotKey,
	})
	return updated, nil
}

// Delete removes the record only: a task the container still has is the
// client's to delete first, as in containerd.
func (l *localService) Delete(ctx context.Context, id string) error {
	if err := l.Store.Delete(ctx, id); err != nil {
		return err
	}
	events.Announce(ctx, l.publisher, "/containers/delete", &eventstypes.ContainerDelete{Id: id})
	return nil
}
