// Package proxy is a leases.Manager over the daemon's Leases gRPC service.
package proxy

import (
	"context"

	"github.com/llitfkitfk/containerd/api/convert"
	leasesapi "github.com/llitfkitfk/containerd/api/services/leases/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/leases"
)

type manager struct {
	client leasesapi.LeasesClient
}

// NewLeaseManager is a leases.Manager that manages the leases of the daemon
// behind client. Errors come back as errdefs kinds.
func NewLeaseManager(client leasesapi.LeasesClient) leases.Manager {
	return &manager{client: client}
}

// Create makes a lease; without WithID the daemon picks the id (ours
// does; containerd's daemons require one).
func (m *manager) Create(ctx context.Context, opts ...leases.Opt) (leases.Lease, error) {
	var l leases.Lease
	for _, opt := range opts {
		if err := opt(&l); err != nil {
			return leases.Lease{}, err
		}
	}
	resp, err := m.client.Create(ctx, &leasesapi.CreateRequest{Id: l.ID, Labels: l.Labels})
	if err != nil {
		return leases.Lease{}, errdefs.FromGRPC(err)
	}
	return leaseFromProto(resp.Lease), nil
}

func (m *manager) Delete(ctx context.Context, l leases.Lease, opts ...leases.DeleteOpt) error {
	var do leases.DeleteOptions
	for _, opt := range opts {
		if err := opt(ctx, &do); err != nil {
			return err
		}
	}
	_, err := m.client.Delete(ctx, &leasesapi.DeleteRequest{Id: l.ID, Sync: do.Synchronous})
	return errdefs.FromGRPC(err)
}

func (m *manager) List(ctx context.Context, filters ...string) ([]leases.Lease, error) {
	resp, err := m.client.List(ctx, &leasesapi.ListRequest{Filters: filters})
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	out := make([]leases.Lease, len(resp.Leases))
	for i, l := range resp.Leases {
		out[i] = leaseFromProto(l)
	}
	return out, nil
}

func (m *manager) AddResource(ctx context.Context, l leases.Lease, r leases.Resource) error {
	_, err := m.client.AddResource(ctx, &leasesapi.AddResourceRequest{
		Id:       l.ID,
		Resource: convert.LeaseResourceToProto(r),
	})
	return errdefs.FromGRPC(err)
}

func (m *manager) DeleteResource(ctx context.Context, l leases.Lease, r leases.Resource) error {
	_, err := m.client.DeleteResource(ctx, &leasesapi.DeleteResourceRequest{
		Id:       l.ID,
		Resource: convert.LeaseResourceToProto(r),
	})
	return errdefs.FromGRPC(err)
}

func (m *manager) ListResources(ctx context.Context, l leases.Lease) ([]leases.Resource, error) {
	resp, err := m.client.ListResources(ctx, &leasesapi.ListResourcesRequest{Id: l.ID})
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	out := make([]leases.Resource, len(resp.Resources))
	for i, r := range resp.Resources {
		out[i] = convert.LeaseResourceFromProto(r)
	}
	return out, nil
}

func leaseFromProto(l *leasesapi.Lease) leases.Lease {
	return leases.Lease{
		ID:        l.GetId(),
		CreatedAt: convert.TimestampFromProto(l.GetCreatedAt()),
		Labels:    l.GetLabels(),
	}
}
