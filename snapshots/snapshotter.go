// Package snapshots defines the snapshotter: the part of the daemon that
// keeps container filesystems as chains of layers and hands them out as
// mounts.
//
// A snapshot is active (writable, made by Prepare), a view (read-only, made
// by View) or committed (immutable, made by Commit from an active snapshot).
// Only committed snapshots can be parents. Keys of every kind share one
// namespace per snapshotter.
package snapshots

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/llitfkitfk/containerd/mount"
)

// Labels with meaning to clients and to the metadata layer.
const (
	// UnpackKeyPrefix starts the keys of snapshots that layers are being
	// unpacked into; UnpackKeyFormat is the whole key, filled with a unique
	// string and the layer's chain ID.
	UnpackKeyPrefix = "extract"
	UnpackKeyFormat = UnpackKeyPrefix + "-%s %s"

	// LabelSnapshotRef names, on a snapshot in the metadata layer, the key
	// the backing snapshotter knows it by, so that a remote snapshotter can
	// share snapshots between namespaces.
	LabelSnapshotRef = "containerd.io/snapshot.ref"

	// InheritedLabelPrefix marks labels that the metadata layer passes on
	// to the backing snapshotter; all others stay in the metadata layer.
	InheritedLabelPrefix = "containerd.io/snapshot/"
)

// Kind is the state of a snapshot. The values are those of the snapshots
// API, so they cross the wire unchanged.
type Kind uint8

const (
	KindUnknown Kind = iota
	KindView
	KindActive
	KindCommitted
)

// ParseKind parses the names String returns, in any case. Anything else is
// KindUnknown.
func ParseKind(s string) Kind {
	switch strings.ToLower(s) {
	case "view":
		return KindView
	case "active":
		return KindActive
	case "committed":
		return KindCommitted
	}
	return KindUnknown
}

func (k Kind) String() string {
	switch k {
	case KindView:
		return "View"
	case KindActive:
		return "Active"
	case KindCommitted:
		return "Committed"
	}
	return "Unknown"
}

// MarshalJSON writes the kind as its name, the form ctr prints.
func (k Kind) MarshalJSON() ([]byte, error) { return json.Marshal(k.String()) }

// UnmarshalJSON reads a kind written by MarshalJSON.
func (k *Kind) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*k = ParseKind(s)
	return nil
}

// Info describes a snapshot.
type Info struct {
	Kind Kind
	// Name is the key of an active snapshot or view, or the name of a
	// committed one.
	Name string
	// Parent is the name of the committed snapshot this one is based on,
	// or empty.
	Parent string `json:",omitempty"`
	// Labels are the only mutable part of a snapshot.
	Labels  map[string]string `json:",omitempty"`
	Created time.Time
	Updated time.Time
}

// Usage is the disk a snapshot uses by itself, not counting its parents.
type Usage struct {
	Inodes int64
	Size   int64 // bytes
}

// Add adds other to u. Inodes shared between the two are counted twice, so
// the sum is an upper bound.
func (u *Usage) Add(other Usage) {
	u.Size += other.Size
	u.Inodes += other.Inodes
}

// WalkFunc is called by Walk for each snapshot selected.
type WalkFunc func(context.Context, Info) error

// Snapshotter keeps snapshots and returns the mounts that assemble them.
//
// Errors wrap the errdefs kinds: NotFound for a missing key or parent,
// AlreadyExists for a key or name in use, FailedPrecondition for an
// operation the snapshot's kind or children forbid, InvalidArgument for a
// bad filter or field path.
type Snapshotter interface {
	// Stat returns the info of the snapshot with key or name key.
	Stat(ctx context.Context, key string) (Info, error)

	// Update changes the mutable fields of snapshot info.Name and returns
	// the result. fieldpaths selects what changes: "labels" replaces all
	// labels, "labels.<key>" one label (removed when info has no value for
	// it). With no fieldpaths, all labels are replaced. Any other field is
	// immutable.
	Update(ctx context.Context, info Info, fieldpaths ...string) (Info, error)

	// Usage returns the disk the snapshot uses, excluding its parents. For
	// an active snapshot it is measured, which takes time proportional to
	// its size; for a committed one it was recorded at commit.
	Usage(ctx context.Context, key string) (Usage, error)

	// Mounts returns again the mounts that Prepare or View returned for
	// key. Committed snapshots have no mounts.
	Mounts(ctx context.Context, key string) ([]mount.Mount, error)

	// Prepare creates an active snapshot key on top of the committed
	// snapshot parent ("" for an empty filesystem) and returns the mounts
	// that assemble it writable.
	Prepare(ctx context.Context, key, parent string, opts ...Opt) ([]mount.Mount, error)

	// View is Prepare for a read-only snapshot, which cannot be committed.
	View(ctx context.Context, key, parent string, opts ...Opt) ([]mount.Mount, error)

	// Commit turns the active snapshot key into the committed snapshot
	// name, with the same parent. key is gone afterwards. Labels are those
	// of opts, not key's.
	Commit(ctx context.Context, name, key string, opts ...Opt) error

	// Remove removes the snapshot with key or name key, which must have no
	// children.
	Remove(ctx context.Context, key string) error

	// Walk calls fn for each snapshot that matches one of filters (all when
	// there are none). Filter fields: kind (active, view, committed), name,
	// parent, labels.<key>.
	Walk(ctx context.Context, fn WalkFunc, filters ...string) error

	// Close releases the snapshotter's resources. It returns nil when
	// already closed.
	Close() error
}

// Cleaner is implemented by snapshotters that can reclaim disk left behind
// by removals that did not complete, for the garbage collector to call.
type Cleaner interface {
	Cleanup(ctx context.Context) error
}

// Opt sets properties of a snapshot being created or committed.
type Opt func(info *Info) error

// WithLabels adds labels to the snapshot.
func WithLabels(labels map[string]string) Opt {
	return func(info *Info) error {
		if info.Labels == nil {
			info.Labels = make(map[string]string, len(labels))
		}
		for k, v := range labels {
			info.Labels[k] = v
		}
		return nil
	}
}

// FilterInheritedLabels returns the labels a metadata layer passes on to
// the backing snapshotter: LabelSnapshotRef and those under
// InheritedLabelPrefix.
func FilterInheritedLabels(labels map[string]string) map[string]string {
	if labels == nil {
		return nil
	}
	filtered := make(map[string]string)
	for k, v := range labels {
		if k == LabelSnapshotRef || strings.HasPrefix(k, InheritedLabelPrefix) {
			filtered[k] = v
		}
	}
	return filtered
}
