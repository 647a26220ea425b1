package plugins

import (
	"context"
	"testing"

	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/streaming"
)

type stringObject struct{ value string }

func (s *stringObject) UnmarshalAny(_ context.Context, _ streaming.StreamGetter, a *anypb.Any) error {
	var v wrapperspb.StringValue
	if err := a.UnmarshalTo(&v); err != nil {
		return err
	}
	s.value = v.GetValue()
	return nil
}

func TestRegistry(t *testing.T) {
	Register(&wrapperspb.StringValue{}, &stringObject{})
	ctx := context.Background()
	bare, _ := streaming.MarshalAny(wrapperspb.String("bare"))
	prefixed, _ := anypb.New(wrapperspb.String("prefixed"))
	for want, a := range map[string]*anypb.Any{"bare": bare, "prefixed": prefixed} {
		obj, err := Unmarshal(ctx, nil, a)
		if err != nil {
			t.Fatal(err)
		}
		// Each call gets a new object.
		if s, ok := obj.(*stringObject); !ok || s.value != want {
			t.Fatalf("%s: got %#v", want, obj)
		}
	}
	other, _ := streaming.MarshalAny(wrapperspb.Int32(1))
	if _, err := Unmarshal(ctx, nil, other); !errdefs.IsNotImplemented(err) {
		t.Fatalf("unregistered type: %v", err)
	}
	if _, err := Unmarshal(ctx, nil, nil); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("nil: %v", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("registering a type twice did not panic")
			}
		}()
		Register(&wrapperspb.StringValue{}, &stringObject{})
	}()
}
