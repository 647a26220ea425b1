package events

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/errdefs"
)

// MarshalEvent encodes ev in an Any whose type URL is the bare message name,
// such as "containerd.events.TaskExit". containerd's clients look event types
// up by that name and cannot decode the "type.googleapis.com/" form that
// anypb.New writes. An event that is already an Any is not wrapped again,
// but its type URL is cut to the bare name for the same reason.
func MarshalEvent(ev Event) (*anypb.Any, error) {
	if ev == nil {
		return nil, fmt.Errorf("event must not be nil: %w", errdefs.ErrInvalidArgument)
	}
	if a, ok := ev.(*anypb.Any); ok {
		if a == nil {
			return nil, fmt.Errorf("event must not be nil: %w", errdefs.ErrInvalidArgument)
		}
		i := strings.LastIndexByte(a.GetTypeUrl(), '/')
		if i < 0 {
			return a, nil
		}
		return &anypb.Any{TypeUrl: a.GetTypeUrl()[i+1:], Value: a.GetValue()}, nil
	}
	value, err := proto.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("marshal event %s: %w", proto.MessageName(ev), err)
	}
	return &anypb.Any{TypeUrl: string(proto.MessageName(ev)), Value: value}, nil
}

// UnmarshalEvent decodes a, whose type must be in the global protobuf
// registry. The type URL may be the bare message name or carry a prefix
// ending in '/'.
func UnmarshalEvent(a *anypb.Any) (proto.Message, error) {
	if a == nil {
		return nil, fmt.Errorf("event must not be nil: %w", errdefs.ErrInvalidArgument)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(a.GetTypeUrl())
	if err != nil {
		if errors.Is(err, protoregistry.NotFound) {
			return nil, fmt.Errorf("event type %q: %w", a.GetTypeUrl(), errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("event type %q: %w", a.GetTypeUrl(), err)
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(a.GetValue(), m); err != nil {
		return nil, fmt.Errorf("unmarshal event %q: %w", a.GetTypeUrl(), err)
	}
	return m, nil
}
