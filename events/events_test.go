package events

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/sourcecontextpb"
	"google.golang.org/protobuf/types/known/typepb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/filters"
)

// labeled is a message type with the shapes the well-known types lack: a
// string map, as containerd events carry labels, and a nested message.
var labeled = func() protoreflect.MessageType {
	s := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	u := descriptorpb.FieldDescriptorProto_TYPE_UINT32.Enum()
	m := descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("events_test.proto"),
		Package: proto.String("eventstest"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("Labeled"),
			Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("id"), Number: proto.Int32(1), Type: s, Label: opt, JsonName: proto.String("id")},
				{Name: proto.String("pid"), Number: proto.Int32(2), Type: u, Label: opt, JsonName: proto.String("pid")},
				{Name: proto.String("labels"), Number: proto.Int32(3), Type: m, Label: rep, TypeName: proto.String(".eventstest.Labeled.LabelsEntry"), JsonName: proto.String("labels")},
				{Name: proto.String("child"), Number: proto.Int32(4), Type: m, Label: opt, TypeName: proto.String(".eventstest.Labeled"), JsonName: proto.String("child")},
			},
			NestedType: []*descriptorpb.DescriptorProto{{
				Name: proto.String("LabelsEntry"),
				Field: []*descriptorpb.FieldDescriptorProto{
					{Name: proto.String("key"), Number: proto.Int32(1), Type: s, Label: opt, JsonName: proto.String("key")},
					{Name: proto.String("value"), Number: proto.Int32(2), Type: s, Label: opt, JsonName: proto.String("value")},
				},
				Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
			}},
		}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		panic(err)
	}
	mt := dynamicpb.NewMessageType(fd.Messages().ByName("Labeled"))
	if err := protoregistry.GlobalTypes.RegisterMessage(mt); err != nil {
		panic(err)
	}
	return mt
}()

func newLabeled(id string, pid uint32, labels map[string]string) proto.Message {
	m := labeled.New()
	fields := m.Descriptor().Fields()
	if id != "" {
		m.Set(fields.ByName("id"), protoreflect.ValueOfString(id))
	}
	if pid != 0 {
		m.Set(fields.ByName("pid"), protoreflect.ValueOfUint32(pid))
	}
	lm := m.Mutable(fields.ByName("labels")).Map()
	for k, v := range labels {
		lm.Set(protoreflect.ValueOfString(k).MapKey(), protoreflect.ValueOfString(v))
	}
	return m.Interface()
}

func TestMarshalEvent(t *testing.T) {
	a, err := MarshalEvent(wrapperspb.String("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if a.TypeUrl != "google.protobuf.StringValue" {
		t.Errorf("TypeUrl = %q, want the bare message name", a.TypeUrl)
	}
	m, err := UnmarshalEvent(a)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.(*wrapperspb.StringValue).GetValue(); got != "hello" {
		t.Errorf("round trip gave %q", got)
	}

	// The prefixed form anypb writes is read as well.
	prefixed, err := anypb.New(wrapperspb.String("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := UnmarshalEvent(prefixed); err != nil || m.(*wrapperspb.StringValue).GetValue() != "hi" {
		t.Errorf("UnmarshalEvent(%s) = %v, %v", prefixed.TypeUrl, m, err)
	}

	// An Any is passed on, not wrapped again, with its name made bare.
	if a, err := MarshalEvent(prefixed); err != nil || a.TypeUrl != "google.protobuf.StringValue" || !proto.Equal(a, &anypb.Any{TypeUrl: a.TypeUrl, Value: prefixed.Value}) {
		t.Errorf("MarshalEvent(Any) = %v, %v", a, err)
	}

	if a, err := MarshalEvent(&emptypb.Empty{}); err != nil || a.TypeUrl != "google.protobuf.Empty" {
		t.Errorf("MarshalEvent(Empty) = %v, %v", a, err)
	}
}

func TestMarshalEventErrors(t *testing.T) {
	if _, err := MarshalEvent(nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("MarshalEvent(nil) = %v, want invalid argument", err)
	}
	if _, err := MarshalEvent((*anypb.Any)(nil)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("MarshalEvent(nil Any) = %v, want invalid argument", err)
	}
	if _, err := UnmarshalEvent(nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("UnmarshalEvent(nil) = %v, want invalid argument", err)
	}
	if _, err := UnmarshalEvent(&anypb.Any{TypeUrl: "containerd.events.NoSuchThing"}); !errdefs.IsNotFound(err) {
		t.Errorf("UnmarshalEvent(unknown) = %v, want not found", err)
	}
	if _, err := UnmarshalEvent(&anypb.Any{TypeUrl: "google.protobuf.StringValue", Value: []byte{0xff}}); err == nil {
		t.Error("UnmarshalEvent(garbage) succeeded")
	}
}

func envelope(t *testing.T, ev Event) *Envelope {
	t.Helper()
	a, err := MarshalEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	return &Envelope{Namespace: "default", Topic: "/tasks/exit", Event: a}
}

func TestEnvelopeField(t *testing.T) {
	typ := &typepb.Type{
		Name:          "t",
		SourceContext: &sourcecontextpb.SourceContext{FileName: "a.proto"},
		Syntax:        typepb.Syntax_SYNTAX_EDITIONS,
	}
	for _, tc := range []struct {
		ev        Event
		fieldpath []string
		value     string
		present   bool
	}{
		{&emptypb.Empty{}, []string{"topic"}, "/tasks/exit", true},
		{&emptypb.Empty{}, []string{"namespace"}, "default", true},
		{&emptypb.Empty{}, []string{"timestamp"}, "", false},
		{&emptypb.Empty{}, nil, "", false},
		{&emptypb.Empty{}, []string{"event"}, "", false},
		{&emptypb.Empty{}, []string{"event", "value"}, "", false},
		{wrapperspb.String("x"), []string{"event", "value"}, "x", true},
		{wrapperspb.String(""), []string{"event", "value"}, "", false},
		{wrapperspb.String("x"), []string{"event", "value", "more"}, "", false},
		{wrapperspb.Bool(true), []string{"event", "value"}, "true", true},
		{wrapperspb.Int64(-7), []string{"event", "value"}, "-7", true},
		{wrapperspb.Double(1.5), []string{"event", "value"}, "1.5", true},
		{typ, []string{"event", "name"}, "t", true},
		{typ, []string{"event", "source_context", "file_name"}, "a.proto", true},
		{typ, []string{"event", "syntax"}, "SYNTAX_EDITIONS", true},
		{typ, []string{"event", "fields"}, "", false},
		{&typepb.Type{}, []string{"event", "source_context", "file_name"}, "", false},
		{newLabeled("c1", 42, map[string]string{"a.b": "c", "x": ""}), []string{"event", "labels", "a", "b"}, "c", true},
		{newLabeled("c1", 42, map[string]string{"a.b": "c", "x": ""}), []string{"event", "labels", "x"}, "", true},
		{newLabeled("c1", 42, nil), []string{"event", "labels", "y"}, "", false},
		{newLabeled("c1", 42, nil), []string{"event", "labels"}, "", false},
		{newLabeled("c1", 42, nil), []string{"event", "id"}, "c1", true},
		{newLabeled("c1", 42, nil), []string{"event", "pid"}, "42", true},
		{newLabeled("c1", 0, nil), []string{"event", "pid"}, "", false},
		{newLabeled("c1", 0, nil), []string{"event", "child", "id"}, "", false},
	} {
		e := envelope(t, tc.ev)
		value, present := e.Field(tc.fieldpath)
		if value != tc.value || present != tc.present {
			t.Errorf("%s: Field(%q) = %q, %v; want %q, %v", proto.MessageName(tc.ev), tc.fieldpath, value, present, tc.value, tc.present)
		}
	}

	// An event whose type is not registered has no fields.
	e := &Envelope{Topic: "/x", Event: &anypb.Any{TypeUrl: "containerd.events.NoSuchThing"}}
	if v, ok := e.Field([]string{"event", "id"}); ok {
		t.Errorf("unregistered event: Field = %q, present", v)
	}
	if v, ok := (&Envelope{}).Field([]string{"event", "id"}); ok {
		t.Errorf("nil event: Field = %q, present", v)
	}
}

func TestEnvelopeFilter(t *testing.T) {
	e := envelope(t, newLabeled("c1", 42, map[string]string{"io.example/tier": "prod"}))
	for input, want := range map[string]bool{
		`topic=="/tasks/exit",namespace==default`:     true,
		`topic~=^/tasks/,event.id==c1`:                true,
		`event.labels."io.example/tier"==prod`:        true,
		`event.labels."io.example/tier"==dev`:         false,
		`event.pid==42`:                               true,
		`event.id==c2 | namespace==default`:           true,
		`namespace==other`:                            false,
		`event.labels."io.example/tier",event.id!=c1`: false,
	} {
		f, err := filters.Parse(input)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Match(e); got != want {
			t.Errorf("%s: Match = %v, want %v", input, got, want)
		}
	}
}
