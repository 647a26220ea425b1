// Package plugins maps the type URL of a wire object (an Any the transfer
// service receives) to the Go type it becomes. Packages defining transfer
// objects register themselves from init.
package plugins

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/streaming"
)

// Unmarshaler is a transfer object that fills itself in from its wire
// form, opening the streams it names through sg.
type Unmarshaler interface {
	UnmarshalAny(ctx context.Context, sg streaming.StreamGetter, a *anypb.Any) error
}

var registry = struct {
	sync.RWMutex
	types map[string]reflect.Type
}{types: map[string]reflect.Type{}}

// Register makes Any of message's type become a new value of object's
// type, which must be a pointer to a struct implementing Unmarshaler.
// Registering a message twice panics: it is a programming error.
func Register(message proto.Message, object Unmarshaler) {
	name := string(message.ProtoReflect().Descriptor().FullName())
	t := reflect.TypeOf(object)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("transfer plugins: %s: %T is not a pointer to a struct", name, object))
	}
	registry.Lock()
	defer registry.Unlock()
	if _, ok := registry.types[name]; ok {
		panic(fmt.Sprintf("transfer plugins: %s registered twice", name))
	}
	registry.types[name] = t.Elem()
}

// Resolve returns a new, empty object of the type registered for a's
// type URL; errdefs.ErrNotImplemented if none is. The URL may carry a
// "type.googleapis.com/" style prefix or not.
func Resolve(a *anypb.Any) (Unmarshaler, error) {
	url := a.GetTypeUrl()
	name := url[strings.LastIndex(url, "/")+1:]
	registry.RLock()
	t, ok := registry.types[name]
	registry.RUnlock()
	if !ok {
		return nil, fmt.Errorf("transfer object %q not supported: %w", url, errdefs.ErrNotImplemented)
	}
	return reflect.New(t).Interface().(Unmarshaler), nil
}

// Unmarshal returns the transfer object a describes, filled in.
func Unmarshal(ctx context.Context, sg streaming.StreamGetter, a *anypb.Any) (interface{}, error) {
	if a == nil {
		return nil, fmt.Errorf("transfer object missing: %w", errdefs.ErrInvalidArgument)
	}
	obj, err := Resolve(a)
	if err != nil {
		return nil, err
	}
	if err := obj.UnmarshalAny(ctx, sg, a); err != nil {
		return nil, err
	}
	return obj, nil
}
