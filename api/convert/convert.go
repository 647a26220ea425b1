// Package convert is the one place where the wire types of the API meet the
// daemon's domain types. The gRPC services convert requests with it on the
// way in and answers on the way out; the domain packages never see a
// protobuf message other than the opaque Any values they carry.
//
// Conversions do not validate: a digest that does not parse is converted
// as it is, and the layer that acts on it refuses it with InvalidArgument.
package convert

import (
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	containersapi "github.com/llitfkitfk/containerd/api/services/containers/v1"
	contentapi "github.com/llitfkitfk/containerd/api/services/content/v1"
	imagesapi "github.com/llitfkitfk/containerd/api/services/images/v1"
	introspectionapi "github.com/llitfkitfk/containerd/api/services/introspection/v1"
	leasesapi "github.com/llitfkitfk/containerd/api/services/leases/v1"
	namespacesapi "github.com/llitfkitfk/containerd/api/services/namespaces/v1"
	snapshotsapi "github.com/llitfkitfk/containerd/api/services/snapshots/v1"
	"github.com/llitfkitfk/containerd/api/types"
	tasktypes "github.com/llitfkitfk/containerd/api/types/task"
	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/runtime"
	"github.com/llitfkitfk/containerd/snapshots"
)

// TimestampToProto converts t as containerd does: always a timestamp, the
// zero time included, so that a client reading it back gets the zero time
// rather than the Unix epoch that an absent timestamp would read as.
func TimestampToProto(t time.Time) *timestamppb.Timestamp {
	return timestamppb.New(t)
}

// TimestampFromProto is the inverse of TimestampToProto; an absent
// timestamp is the zero time.
func TimestampFromProto(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// DescriptorToProto converts an OCI descriptor.
func DescriptorToProto(d ocispec.Descriptor) *types.Descriptor {
	return &types.Descriptor{
		MediaType:   d.MediaType,
		Digest:      d.Digest.String(),
		Size:        d.Size,
		Annotations: d.Annotations,
	}
}

// DescriptorFromProto converts a descriptor; nil is the zero descriptor.
func DescriptorFromProto(d *types.Descriptor) ocispec.Descriptor {
	if d == nil {
		return ocispec.Descriptor{}
	}
	return ocispec.Descriptor{
		MediaType:   d.MediaType,
		Digest:      digest.Digest(d.Digest),
		Size:        d.Size,
		Annotations: d.Annotations,
	}
}

// MountsToProto converts mounts in order.
func MountsToProto(mounts []mount.Mount) []*types.Mount {
	out := make([]*types.Mount, len(mounts))
	for i, m := range mounts {
		out[i] = &types.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options}
	}
	return out
}

// MountsFromProto converts mounts in order.
func MountsFromProto(mounts []*types.Mount) []mount.Mount {
	out := make([]mount.Mount, len(mounts))
	for i, m := range mounts {
		out[i] = mount.Mount{Type: m.GetType(), Source: m.GetSource(), Target: m.GetTarget(), Options: m.GetOptions()}
	}
	return out
}

// PlatformsToProto converts platforms in order.
func PlatformsToProto(ps []ocispec.Platform) []*types.Platform {
	out := make([]*types.Platform, len(ps))
	for i, p := range ps {
		out[i] = &types.Platform{
			Os:           p.OS,
			Architecture: p.Architecture,
			Variant:      p.Variant,
			OsVersion:    p.OSVersion,
			OsFeatures:   p.OSFeatures,
		}
	}
	return out
}

// EnvelopeToProto converts an event as delivered to a subscriber.
func EnvelopeToProto(env *events.Envelope) *types.Envelope {
	return &types.Envelope{
		Timestamp: TimestampToProto(env.Timestamp),
		Namespace: env.Namespace,
		Topic:     env.Topic,
		Event:     env.Event,
	}
}

// EnvelopeFromProto converts an event forwarded by a client or a shim.
func EnvelopeFromProto(env *types.Envelope) *events.Envelope {
	return &events.Envelope{
		Timestamp: TimestampFromProto(env.GetTimestamp()),
		Namespace: env.GetNamespace(),
		Topic:     env.GetTopic(),
		Event:     env.GetEvent(),
	}
}

// ImageToProto converts an image record.
func ImageToProto(image images.Image) *imagesapi.Image {
	return &imagesapi.Image{
		Name:      image.Name,
		Labels:    image.Labels,
		Target:    DescriptorToProto(image.Target),
		CreatedAt: TimestampToProto(image.CreatedAt),
		UpdatedAt: TimestampToProto(image.UpdatedAt),
	}
}

// ImageFromProto converts an image record; nil is the zero image.
func ImageFromProto(image *imagesapi.Image) images.Image {
	return images.Image{
		Name:      image.GetName(),
		Labels:    image.GetLabels(),
		Target:    DescriptorFromProto(image.GetTarget()),
		CreatedAt: TimestampFromProto(image.GetCreatedAt()),
		UpdatedAt: TimestampFromProto(image.GetUpdatedAt()),
	}
}

// ContainerToProto converts a container record.
func ContainerToProto(c containers.Container) *containersapi.Container {
	return &containersapi.Container{
		Id:     c.ID,
		Labels: c.Labels,
		Image:  c.Image,
		Runtime: &containersapi.Container_Runtime{
			Name:    c.Runtime.Name,
			Options: c.Runtime.Options,
		},
		Spec:        c.Spec,
		Snapshotter: c.Snapshotter,
		SnapshotKey: c.SnapshotKey,
		CreatedAt:   TimestampToProto(c.CreatedAt),
		UpdatedAt:   TimestampToProto(c.UpdatedAt),
		Extensions:  c.Extensions,
		Sandbox:     c.SandboxID,
	}
}

// ContainerFromProto converts a container record; nil is the zero record.
func ContainerFromProto(c *containersapi.Container) containers.Container {
	return containers.Container{
		ID:     c.GetId(),
		Labels: c.GetLabels(),
		Image:  c.GetImage(),
		Runtime: containers.RuntimeInfo{
			Name:    c.GetRuntime().GetName(),
			Options: c.GetRuntime().GetOptions(),
		},
		Spec:        c.GetSpec(),
		Snapshotter: c.GetSnapshotter(),
		SnapshotKey: c.GetSnapshotKey(),
		CreatedAt:   TimestampFromProto(c.GetCreatedAt()),
		UpdatedAt:   TimestampFromProto(c.GetUpdatedAt()),
		Extensions:  c.GetExtensions(),
		SandboxID:   c.GetSandbox(),
	}
}

// ContentInfoToProto converts what is known of a blob.
func ContentInfoToProto(info content.Info) *contentapi.Info {
	return &contentapi.Info{
		Digest:    info.Digest.String(),
		Size:      info.Size,
		CreatedAt: TimestampToProto(info.CreatedAt),
		UpdatedAt: TimestampToProto(info.UpdatedAt),
		Labels:    info.Labels,
	}
}

// ContentInfoFromProto converts what is known of a blob; nil is the zero
// info.
func ContentInfoFromProto(info *contentapi.Info) content.Info {
	return content.Info{
		Digest:    digest.Digest(info.GetDigest()),
		Size:      info.GetSize(),
		CreatedAt: TimestampFromProto(info.GetCreatedAt()),
		UpdatedAt: TimestampFromProto(info.GetUpdatedAt()),
		Labels:    info.GetLabels(),
	}
}

// ContentStatusToProto converts the state of an ingest.
func ContentStatusToProto(st content.Status) *contentapi.Status {
	return &contentapi.Status{
		StartedAt: TimestampToProto(st.StartedAt),
		UpdatedAt: TimestampToProto(st.UpdatedAt),
		Ref:       st.Ref,
		Offset:    st.Offset,
		Total:     st.Total,
		Expected:  st.Expected.String(),
	}
}

// SnapshotInfoToProto converts a snapshot's info. The kinds' values are
// the API's, so they convert as numbers.
func SnapshotInfoToProto(info snapshots.Info) *snapshotsapi.Info {
	return &snapshotsapi.Info{
		Name:      info.Name,
		Parent:    info.Parent,
		Kind:      snapshotsapi.Kind(info.Kind),
		CreatedAt: TimestampToProto(info.Created),
		UpdatedAt: TimestampToProto(info.Updated),
		Labels:    info.Labels,
	}
}

// SnapshotInfoFromProto converts a snapshot's info; nil is the zero info.
func SnapshotInfoFromProto(info *snapshotsapi.Info) snapshots.Info {
	return snapshots.Info{
		Name:    info.GetName(),
		Parent:  info.GetParent(),
		Kind:    snapshots.Kind(info.GetKind()),
		Created: TimestampFromProto(info.GetCreatedAt()),
		Updated: TimestampFromProto(info.GetUpdatedAt()),
		Labels:  info.GetLabels(),
	}
}

// LeaseToProto converts a lease.
func LeaseToProto(l leases.Lease) *leasesapi.Lease {
	return &leasesapi.Lease{
		Id:        l.ID,
		CreatedAt: TimestampToProto(l.CreatedAt),
		Labels:    l.Labels,
	}
}

// LeaseResourceToProto converts a resource a lease holds.
func LeaseResourceToProto(r leases.Resource) *leasesapi.Resource {
	return &leasesapi.Resource{Id: r.ID, Type: r.Type}
}

// LeaseResourceFromProto converts a resource a lease holds; nil is the
// zero resource, which the lease manager refuses.
func LeaseResourceFromProto(r *leasesapi.Resource) leases.Resource {
	return leases.Resource{ID: r.GetId(), Type: r.GetType()}
}

// NamespaceToProto converts a namespace.
func NamespaceToProto(ns namespaces.Info) *namespacesapi.Namespace {
	return &namespacesapi.Namespace{Name: ns.Name, Labels: ns.Labels}
}

// NamespaceFromProto converts a namespace; nil is the zero namespace.
func NamespaceFromProto(ns *namespacesapi.Namespace) namespaces.Info {
	return namespaces.Info{Name: ns.GetName(), Labels: ns.GetLabels()}
}

// TaskStatusToProto converts a process's status. A deleted process has no
// API status of its own; like any other it is unknown.
func TaskStatusToProto(s runtime.Status) tasktypes.Status {
	switch s {
	case runtime.CreatedStatus:
		return tasktypes.Status_CREATED
	case runtime.RunningStatus:
		return tasktypes.Status_RUNNING
	case runtime.StoppedStatus:
		return tasktypes.Status_STOPPED
	case runtime.PausedStatus:
		return tasktypes.Status_PAUSED
	case runtime.PausingStatus:
		return tasktypes.Status_PAUSING
	}
	return tasktypes.Status_UNKNOWN
}

// ProcessToProto converts a process of a task.
func ProcessToProto(st runtime.ProcessState) *tasktypes.Process {
	return &tasktypes.Process{
		ContainerId: st.ContainerID,
		Id:          st.ID,
		Pid:         st.Pid,
		Status:      TaskStatusToProto(st.Status),
		Stdin:       st.Stdin,
		Stdout:      st.Stdout,
		Stderr:      st.Stderr,
		Terminal:    st.Terminal,
		ExitStatus:  st.ExitStatus,
		ExitedAt:    TimestampToProto(st.ExitedAt),
	}
}

// MetricToProto converts a task's metrics.
func MetricToProto(m runtime.Metric) *types.Metric {
	return &types.Metric{Timestamp: TimestampToProto(m.Timestamp), Id: m.ID, Data: m.Data}
}

// PluginToProto converts a loaded plugin, with the error that stopped it
// if any, as introspection reports it.
func PluginToProto(p *plugin.Plugin) *introspectionapi.Plugin {
	pb := &introspectionapi.Plugin{
		Type: p.Registration.Type.String(),
		Id:   p.Registration.ID,
	}
	for _, r := range p.Registration.Requires {
		pb.Requires = append(pb.Requires, r.String())
	}
	if p.Meta != nil {
		pb.Platforms = PlatformsToProto(p.Meta.Platforms)
		pb.Exports = p.Meta.Exports
		pb.Capabilities = p.Meta.Capabilities
	}
	if err := p.Err(); err != nil {
		pb.InitErr = &rpcstatus.Status{Code: int32(errdefs.Code(err)), Message: err.Error()}
	}
	return pb
}
