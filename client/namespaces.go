package client

import (
	"context"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	namespacesapi "github.com/llitfkitfk/containerd/api/services/namespaces/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/namespaces"
)

type remoteNamespaces struct {
	client namespacesapi.NamespacesClient
}

// NewNamespaceStoreFromClient is a namespaces.Store over the daemon's
// Namespaces service behind client. Errors come back as errdefs kinds.
func NewNamespaceStoreFromClient(client namespacesapi.NamespacesClient) namespaces.Store {
	return &remoteNamespaces{client: client}
}

func (s *remoteNamespaces) Create(ctx context.Context, namespace string, labels map[string]string) error {
	_, err := s.client.Create(ctx, &namespacesapi.CreateNamespaceRequest{
		Namespace: &namespacesapi.Namespace{Name: namespace, Labels: labels},
	})
	return errdefs.FromGRPC(err)
}

func (s *remoteNamespaces) Labels(ctx context.Context, namespace string) (map[string]string, error) {
	resp, err := s.client.Get(ctx, &namespacesapi.GetNamespaceRequest{Name: namespace})
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	return resp.Namespace.GetLabels(), nil
}

// SetLabel sets one label; an empty value removes it.
func (s *remoteNamespaces) SetLabel(ctx context.Context, namespace, key, value string) error {
	var labels map[string]string
	if value != "" {
		labels = map[string]string{key: value}
	}
	_, err := s.client.Update(ctx, &namespacesapi.UpdateNamespaceRequest{
		Namespace:  &namespacesapi.Namespace{Name: namespace, Labels: labels},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels." + key}},
	})
	return errdefs.FromGRPC(err)
}

func (s *remoteNamespaces) List(ctx context.Context) ([]string, error) {
	resp, err := s.client.List(ctx, &namespacesapi.ListNamespacesRequest{})
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	out := make([]string, len(resp.Namespaces))
	for i, ns := range resp.Namespaces {
		out[i] = ns.Name
	}
	return out, nil
}

// Delete removes an empty namespace. The options run before the request;
// none crosses the API.
func (s *remoteNamespaces) Delete(ctx context.Context, namespace string, opts ...namespaces.DeleteOpts) error {
	for _, opt := range opts {
		if err := opt(ctx); err != nil {
			return err
		}
	}
	_, err := s.client.Delete(ctx, &namespacesapi.DeleteNamespaceRequest{Name: namespace})
	return errdefs.FromGRPC(err)
}
