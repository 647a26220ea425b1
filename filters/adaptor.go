package filters

// Adaptor exposes the fields of an object to a Filter. Field returns the
// value at fieldpath and whether the object has that field at all.
type Adaptor interface {
	Field(fieldpath []string) (value string, present bool)
}

// AdapterFunc adapts an ordinary function to an Adaptor. The name, spelling
// included, is containerd's.
type AdapterFunc func(fieldpath []string) (string, bool)

// Field calls fn(fieldpath).
func (fn AdapterFunc) Field(fieldpath []string) (string, bool) { return fn(fieldpath) }
