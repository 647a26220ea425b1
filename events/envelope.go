package events

import (
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// fielder is what a filters.Adaptor looks like; declared here so that events
// need not import filters.
type fielder interface {
	Field(fieldpath []string) (string, bool)
}

// Field makes envelopes filterable on "topic", "namespace" and
// "event.<fieldpath>". An event that has a Field method of its own answers
// for itself; otherwise its fields are found by their protobuf names.
func (e *Envelope) Field(fieldpath []string) (string, bool) {
	if len(fieldpath) == 0 {
		return "", false
	}
	switch fieldpath[0] {
	case "namespace":
		return e.Namespace, e.Namespace != ""
	case "topic":
		return e.Topic, e.Topic != ""
	case "event":
		ev, err := UnmarshalEvent(e.Event)
		if err != nil {
			// An event we cannot decode has no fields to match.
			return "", false
		}
		if f, ok := ev.(fielder); ok {
			return f.Field(fieldpath[1:])
		}
		return messageField(ev.ProtoReflect(), fieldpath[1:])
	}
	return "", false
}

// messageField follows fieldpath through m. Nested messages are entered,
// string maps take the rest of the path joined by '.' as the key (so
// labels."a.b" and labels.a.b agree, as in containerd), and scalars are
// formatted as text. Unset fields, lists and bytes are never present.
func messageField(m protoreflect.Message, fieldpath []string) (string, bool) {
	if len(fieldpath) == 0 {
		return "", false
	}
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(fieldpath[0]))
	if fd == nil {
		return "", false
	}
	rest := fieldpath[1:]

	switch {
	case fd.IsMap():
		if len(rest) == 0 || fd.MapKey().Kind() != protoreflect.StringKind || fd.MapValue().Kind() != protoreflect.StringKind {
			return "", false
		}
		key := protoreflect.ValueOfString(strings.Join(rest, ".")).MapKey()
		v := m.Get(fd).Map().Get(key)
		if !v.IsValid() {
			return "", false
		}
		return v.String(), true
	case fd.IsList():
		return "", false
	case fd.Message() != nil:
		if !m.Has(fd) {
			return "", false
		}
		sub := m.Get(fd).Message()
		if f, ok := sub.Interface().(fielder); ok {
			return f.Field(rest)
		}
		return messageField(sub, rest)
	}

	// Has is false for a proto3 scalar left at its zero value, which
	// matches containerd's rule that an empty string is not present.
	if len(rest) != 0 || !m.Has(fd) {
		return "", false
	}
	return scalarText(fd, m.Get(fd))
}

func scalarText(fd protoreflect.FieldDescriptor, v protoreflect.Value) (string, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return v.String(), true
	case protoreflect.BoolKind:
		return strconv.FormatBool(v.Bool()), true
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name()), true
		}
		return strconv.FormatInt(int64(v.Enum()), 10), true
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return strconv.FormatInt(v.Int(), 10), true
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return strconv.FormatUint(v.Uint(), 10), true
	case protoreflect.FloatKind:
		return strconv.FormatFloat(v.Float(), 'g', -1, 32), true
	case protoreflect.DoubleKind:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64), true
	}
	return "", false
}
