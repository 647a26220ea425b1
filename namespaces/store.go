package namespaces

import "context"

// Store keeps the set of namespaces and their labels.
//
// A namespace is only a name with labels; the objects that live in it are
// reached through the other stores with the namespace bound to the context.
type Store interface {
	// Create adds namespace with labels. It fails with AlreadyExists if the
	// namespace is present and InvalidArgument if the name or a label is bad.
	Create(ctx context.Context, namespace string, labels map[string]string) error
	// Labels returns the labels of namespace, or NotFound.
	Labels(ctx context.Context, namespace string) (map[string]string, error)
	// SetLabel sets one label of namespace; an empty value deletes it.
	SetLabel(ctx context.Context, namespace, key, value string) error
	// List returns the names of all namespaces in sorted order.
	List(ctx context.Context) ([]string, error)
	// Delete removes namespace. It fails with FailedPrecondition while the
	// namespace still holds objects, so that nothing is orphaned.
	Delete(ctx context.Context, namespace string, opts ...DeleteOpts) error
}

// DeleteOpts run inside Delete after the namespace is known to exist and
// before it is checked for emptiness, so they can release what it holds.
// Their context is bound to the namespace being deleted; an error from one
// aborts the deletion.
type DeleteOpts func(context.Context) error

// Info is a namespace's name and labels.
type Info struct {
	Name   string
	Labels map[string]string
}

// Manager is the namespaces service: each call is a transaction of its
// own, and changes are announced as /namespaces/* events.
type Manager interface {
	// Get returns the namespace, or NotFound.
	Get(ctx context.Context, name string) (Info, error)
	// List returns every namespace, sorted by name.
	List(ctx context.Context) ([]Info, error)
	// Create adds ns, as Store.Create.
	Create(ctx context.Context, ns Info) (Info, error)
	// Update changes labels: with no field paths, or the path "labels",
	// they are replaced; "labels.<key>" sets (or, if empty, removes) one.
	// Any other path is InvalidArgument. It returns the namespace as it
	// now is.
	Update(ctx context.Context, ns Info, fieldpaths ...string) (Info, error)
	// Delete removes an empty namespace, as Store.Delete.
	Delete(ctx context.Context, name string) error
}
