// Package content holds the content service: the local service over the
// daemon's namespaced content store, which announces deletions as
// /content/delete events, and its gRPC adapter, which streams blobs and
// drives resumable ingests (see write.go).
package content

import (
	"context"

	digest "github.com/opencontainers/go-digest"

	eventstypes "github.com/llitfkitfk/containerd/api/events"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/metadata"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.ServicePlugin,
		ID:       services.ContentService,
		Requires: []plugin.Type{plugin.MetadataPlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			m, err := ic.Get(plugin.MetadataPlugin)
			if err != nil {
				return nil, err
			}
			return NewLocal(m.(*metadata.DB).ContentStore(), ic.Events), nil
		},
	})
}

// localService is a content.Store that announces deletions.
type localService struct {
	content.Store
	publisher events.Publisher
}

// NewLocal returns store as the content service: deletions are announced
// through publisher.
func NewLocal(store content.Store, publisher events.Publisher) content.Store {
	return &localService{Store: store, publisher: publisher}
}

func (l *localService) Delete(ctx context.Context, dgst digest.Digest) error {
	if err := l.Store.Delete(ctx, dgst); err != nil {
		return err
	}
	events.Announce(ctx, l.publisher, "/content/delete", &eventstypes.ContentDelete{Digest: dgst.String()})
	return nil
}
