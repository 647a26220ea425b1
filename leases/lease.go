// Package leases defines leases: named holds that keep what is written
// under them from garbage collection until the lease is deleted or expires.
package leases

import (
	"context"
	"time"
)

// Lease is one hold on resources.
type Lease struct {
	ID        string
	CreatedAt time.Time
	Labels    map[string]string
}

// Resource is something a lease holds: Type is "content", "ingests",
// "snapshots/<snapshotter>" or "images"; ID its digest, ref or key.
type Resource struct {
	ID   string
	Type string
}

// Manager keeps the leases of each namespace; the namespace comes from ctx.
type Manager interface {
	Create(ctx context.Context, opts ...Opt) (Lease, error)
	Delete(ctx context.Context, lease Lease, opts ...DeleteOpt) error
	// List returns the leases matching any of the filters (fields: id,
	// labels.<key>).
	List(ctx context.Context, filters ...string) ([]Lease, error)
	AddResource(ctx context.Context, lease Lease, resource Resource) error
	DeleteResource(ctx context.Context, lease Lease, resource Resource) error
	ListResources(ctx context.Context, lease Lease) ([]Resource, error)
}

// Opt sets a field of a lease being created.
type Opt func(*Lease) error

// WithID names the lease; without it a random id is made.
func WithID(id string) Opt {
	return func(l *Lease) error {
		l.ID = id
		return nil
	}
}

// WithLabels adds labels to the lease.
func WithLabels(labels map[string]string) Opt {
	return func(l *Lease) error {
		if l.Labels == nil {
			l.Labels = map[string]string{}
		}
		for k, v := range labels {
			l.Labels[k] = v
		}
		return nil
	}
}

// WithExpiration makes the lease expire after d: the label
// containerd.io/gc.expire holds the time, and GC ignores the lease after it.
func WithExpiration(d time.Duration) Opt {
	return func(l *Lease) error {
		if l.Labels == nil {
			l.Labels = map[string]string{}
		}
		l.Labels[LabelExpire] = time.Now().Add(d).Format(time.RFC3339)
		return nil
	}
}

// LabelExpire is the label holding a lease's expiry, in RFC 3339.
const LabelExpire = "containerd.io/gc.expire"

// DeleteOptions are the options of Manager.Delete.
type DeleteOptions struct {
	// Synchronous waits for garbage collection of what the lease held.
	Synchronous bool
}

// DeleteOpt sets a DeleteOptions field.
type DeleteOpt func(context.Context, *DeleteOptions) error

// SynchronousDelete makes Delete wait for garbage collection.
func SynchronousDelete(_ context.Context, o *DeleteOptions) error {
	o.Synchronous = true
	return nil
}
