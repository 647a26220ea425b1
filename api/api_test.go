package api_test

// These checks pin the parts of the schema that containerd clients (ctr 1.6
// and 2.x) depend on on the wire: full service and method names, streaming
// kinds, and field numbers. They read the descriptors registered by the
// generated packages, so they fail if a .proto edit changes any of them.

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/llitfkitfk/containerd/api/events"
	_ "github.com/llitfkitfk/containerd/api/runtime/bootstrap/v1"
	_ "github.com/llitfkitfk/containerd/api/runtime/task/v2"
	_ "github.com/llitfkitfk/containerd/api/services/containers/v1"
	_ "github.com/llitfkitfk/containerd/api/services/content/v1"
	_ "github.com/llitfkitfk/containerd/api/services/diff/v1"
	_ "github.com/llitfkitfk/containerd/api/services/events/v1"
	_ "github.com/llitfkitfk/containerd/api/services/images/v1"
	_ "github.com/llitfkitfk/containerd/api/services/introspection/v1"
	_ "github.com/llitfkitfk/containerd/api/services/leases/v1"
	_ "github.com/llitfkitfk/containerd/api/services/namespaces/v1"
	_ "github.com/llitfkitfk/containerd/api/services/snapshots/v1"
	_ "github.com/llitfkitfk/containerd/api/services/streaming/v1"
	_ "github.com/llitfkitfk/containerd/api/services/tasks/v1"
	_ "github.com/llitfkitfk/containerd/api/services/transfer/v1"
	_ "github.com/llitfkitfk/containerd/api/services/ttrpc/events/v1"
	_ "github.com/llitfkitfk/containerd/api/services/version/v1"
	_ "github.com/llitfkitfk/containerd/api/types"
	_ "github.com/llitfkitfk/containerd/api/types/runc/options"
	_ "github.com/llitfkitfk/containerd/api/types/task"
	_ "github.com/llitfkitfk/containerd/api/types/transfer"
)

type streaming int

const (
	unary streaming = iota
	serverStream
	clientStream
	bidi
)

func TestMethods(t *testing.T) {
	const (
		version    = "containerd.services.version.v1.Version"
		intro      = "containerd.services.introspection.v1.Introspection"
		ns         = "containerd.services.namespaces.v1.Namespaces"
		events     = "containerd.services.events.v1.Events"
		ttrpcEv    = "containerd.services.events.ttrpc.v1.Events"
		content    = "containerd.services.content.v1.Content"
		images     = "containerd.services.images.v1.Images"
		leases     = "containerd.services.leases.v1.Leases"
		snapshots  = "containerd.services.snapshots.v1.Snapshots"
		diff       = "containerd.services.diff.v1.Diff"
		containers = "containerd.services.containers.v1.Containers"
		tasks      = "containerd.services.tasks.v1.Tasks"
		shim       = "containerd.task.v2.Task"
		transfer   = "containerd.services.transfer.v1.Transfer"
		stream     = "containerd.services.streaming.v1.Streaming"
	)
	for _, tc := range []struct {
		service, method, in, out string
		kind                     streaming
	}{
		{version, "Version", "google.protobuf.Empty", "containerd.services.version.v1.VersionResponse", unary},
		{intro, "Plugins", "containerd.services.introspection.v1.PluginsRequest", "containerd.services.introspection.v1.PluginsResponse", unary},
		{intro, "Server", "google.protobuf.Empty", "containerd.services.introspection.v1.ServerResponse", unary},
		{intro, "PluginInfo", "", "", unary},
		{ns, "Get", "", "", unary},
		{ns, "List", "", "", unary},
		{ns, "Create", "", "", unary},
		{ns, "Update", "", "", unary},
		{ns, "Delete", "", "google.protobuf.Empty", unary},
		{events, "Publish", "", "google.protobuf.Empty", unary},
		{events, "Forward", "", "google.protobuf.Empty", unary},
		{events, "Subscribe", "containerd.services.events.v1.SubscribeRequest", "containerd.types.Envelope", serverStream},
		{ttrpcEv, "Forward", "containerd.services.events.ttrpc.v1.ForwardRequest", "google.protobuf.Empty", unary},
		{content, "Info", "", "", unary},
		{content, "Update", "", "", unary},
		{content, "List", "", "", serverStream},
		{content, "Delete", "", "", unary},
		{content, "Read", "", "containerd.services.content.v1.ReadContentResponse", serverStream},
		{content, "Status", "", "", unary},
		{content, "ListStatuses", "", "", unary},
		{content, "Write", "containerd.services.content.v1.WriteContentRequest", "containerd.services.content.v1.WriteContentResponse", bidi},
		{content, "Abort", "", "", unary},
		{images, "Get", "", "", unary},
		{images, "List", "", "", unary},
		{images, "Create", "", "", unary},
		{images, "Update", "", "", unary},
		{images, "Delete", "", "google.protobuf.Empty", unary},
		{leases, "Create", "", "", unary},
		{leases, "Delete", "", "", unary},
		{leases, "List", "", "", unary},
		{leases, "AddResource", "", "", unary},
		{leases, "DeleteResource", "", "", unary},
		{leases, "ListResources", "", "", unary},
		{snapshots, "Prepare", "", "", unary},
		{snapshots, "View", "", "", unary},
		{snapshots, "Mounts", "", "", unary},
		{snapshots, "Commit", "", "", unary},
		{snapshots, "Remove", "", "", unary},
		{snapshots, "Stat", "", "", unary},
		{snapshots, "Update", "", "", unary},
		{snapshots, "List", "", "containerd.services.snapshots.v1.ListSnapshotsResponse", serverStream},
		{snapshots, "Usage", "", "", unary},
		{snapshots, "Cleanup", "", "", unary},
		{diff, "Apply", "", "", unary},
		{diff, "Diff", "", "", unary},
		{containers, "Get", "", "", unary},
		{containers, "List", "", "", unary},
		{containers, "ListStream", "containerd.services.containers.v1.ListContainersRequest", "containerd.services.containers.v1.ListContainerMessage", serverStream},
		{containers, "Create", "", "", unary},
		{containers, "Update", "", "", unary},
		{containers, "Delete", "", "", unary},
		{tasks, "Create", "containerd.services.tasks.v1.CreateTaskRequest", "containerd.services.tasks.v1.CreateTaskResponse", unary},
		{tasks, "Start", "", "", unary},
		{tasks, "Delete", "containerd.services.tasks.v1.DeleteTaskRequest", "containerd.services.tasks.v1.DeleteResponse", unary},
		{tasks, "DeleteProcess", "", "containerd.services.tasks.v1.DeleteResponse", unary},
		{tasks, "Get", "", "", unary},
		{tasks, "List", "", "", unary},
		{tasks, "Kill", "", "", unary},
		{tasks, "Exec", "", "google.protobuf.Empty", unary},
		{tasks, "ResizePty", "", "", unary},
		{tasks, "CloseIO", "", "", unary},
		{tasks, "Pause", "", "", unary},
		{tasks, "Resume", "", "", unary},
		{tasks, "ListPids", "", "", unary},
		{tasks, "Checkpoint", "", "", unary},
		{tasks, "Update", "", "", unary},
		{tasks, "Metrics", "", "", unary},
		{tasks, "Wait", "", "", unary},
		{shim, "State", "", "", unary},
		{shim, "Create", "containerd.task.v2.CreateTaskRequest", "containerd.task.v2.CreateTaskResponse", unary},
		{shim, "Start", "", "", unary},
		{shim, "Delete", "", "", unary},
		{shim, "Pids", "", "", unary},
		{shim, "Pause", "containerd.task.v2.PauseRequest", "google.protobuf.Empty", unary},
		{shim, "Resume", "", "", unary},
		{shim, "Checkpoint", "", "", unary},
		{shim, "Kill", "", "", unary},
		{shim, "Exec", "", "", unary},
		{shim, "ResizePty", "", "", unary},
		{shim, "CloseIO", "", "", unary},
		{shim, "Update", "", "", unary},
		{shim, "Wait", "", "", unary},
		{shim, "Stats", "", "", unary},
		{shim, "Connect", "", "", unary},
		{shim, "Shutdown", "", "google.protobuf.Empty", unary},
		{transfer, "Transfer", "containerd.services.transfer.v1.TransferRequest", "google.protobuf.Empty", unary},
		{stream, "Stream", "google.protobuf.Any", "google.protobuf.Any", bidi},
	} {
		name := tc.service + "/" + tc.method
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(tc.service))
		if err != nil {
			t.Errorf("%s: service not registered: %v", name, err)
			continue
		}
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if !ok {
			t.Errorf("%s: %s is not a service", name, tc.service)
			continue
		}
		md := sd.Methods().ByName(protoreflect.Name(tc.method))
		if md == nil {
			t.Errorf("%s: method missing", name)
			continue
		}
		got := unary
		switch {
		case md.IsStreamingClient() && md.IsStreamingServer():
			got = bidi
		case md.IsStreamingServer():
			got = serverStream
		case md.IsStreamingClient():
			got = clientStream
		}
		if got != tc.kind {
			t.Errorf("%s: streaming kind %d, want %d", name, got, tc.kind)
		}
		if tc.in != "" && string(md.Input().FullName()) != tc.in {
			t.Errorf("%s: input %s, want %s", name, md.Input().FullName(), tc.in)
		}
		if tc.out != "" && string(md.Output().FullName()) != tc.out {
			t.Errorf("%s: output %s, want %s", name, md.Output().FullName(), tc.out)
		}
	}
}

// TestMethodCounts catches methods added that upstream does not have.
func TestMethodCounts(t *testing.T) {
	for service, n := range map[string]int{
		"containerd.services.version.v1.Version":             1,
		"containerd.services.introspection.v1.Introspection": 3,
		"containerd.services.namespaces.v1.Namespaces":       5,
		"containerd.services.events.v1.Events":               3,
		"containerd.services.events.ttrpc.v1.Events":         1,
		"containerd.services.content.v1.Content":             9,
		"containerd.services.images.v1.Images":               5,
		"containerd.services.leases.v1.Leases":               6,
		"containerd.services.snapshots.v1.Snapshots":         10,
		"containerd.services.diff.v1.Diff":                   2,
		"containerd.services.containers.v1.Containers":       6,
		"containerd.services.tasks.v1.Tasks":                 17,
		"containerd.task.v2.Task":                            17,
		"containerd.services.transfer.v1.Transfer":           1,
		"containerd.services.streaming.v1.Streaming":         1,
	} {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
		if err != nil {
			t.Errorf("%s: %v", service, err)
			continue
		}
		if got := d.(protoreflect.ServiceDescriptor).Methods().Len(); got != n {
			t.Errorf("%s: %d methods, want %d", service, got, n)
		}
	}
}

func TestFields(t *testing.T) {
	for _, tc := range []struct {
		message, field string
		number         protoreflect.FieldNumber
		kind           protoreflect.Kind
		list           bool
	}{
		{"containerd.types.Envelope", "timestamp", 1, protoreflect.MessageKind, false},
		{"containerd.types.Envelope", "namespace", 2, protoreflect.StringKind, false},
		{"containerd.types.Envelope", "topic", 3, protoreflect.StringKind, false},
		{"containerd.types.Envelope", "event", 4, protoreflect.MessageKind, false},
		{"containerd.services.introspection.v1.Plugin", "init_err", 7, protoreflect.MessageKind, false},
		{"containerd.services.introspection.v1.Plugin", "capabilities", 6, protoreflect.StringKind, true},
		{"containerd.services.introspection.v1.ServerResponse", "deprecations", 4, protoreflect.MessageKind, true},
		{"containerd.types.Descriptor", "annotations", 5, protoreflect.MessageKind, true},
		{"containerd.types.Platform", "os_version", 4, protoreflect.StringKind, false},
		{"containerd.types.Mount", "options", 4, protoreflect.StringKind, true},
		{"containerd.v1.types.Process", "status", 4, protoreflect.EnumKind, false},
		{"containerd.v1.types.Process", "exited_at", 10, protoreflect.MessageKind, false},
		{"containerd.services.content.v1.WriteContentRequest", "action", 1, protoreflect.EnumKind, false},
		{"containerd.services.content.v1.WriteContentRequest", "data", 6, protoreflect.BytesKind, false},
		{"containerd.services.content.v1.WriteContentRequest", "labels", 7, protoreflect.MessageKind, true},
		{"containerd.services.images.v1.Image", "created_at", 7, protoreflect.MessageKind, false},
		{"containerd.services.images.v1.Image", "updated_at", 8, protoreflect.MessageKind, false},
		{"containerd.services.images.v1.DeleteImageRequest", "target", 3, protoreflect.MessageKind, false},
		{"containerd.services.leases.v1.CreateRequest", "labels", 3, protoreflect.MessageKind, true},
		{"containerd.services.diff.v1.DiffResponse", "diff", 3, protoreflect.MessageKind, false},
		{"containerd.services.containers.v1.Container", "extensions", 10, protoreflect.MessageKind, true},
		{"containerd.services.containers.v1.Container", "sandbox", 11, protoreflect.StringKind, false},
		{"containerd.services.tasks.v1.CreateTaskRequest", "rootfs", 3, protoreflect.MessageKind, true},
		{"containerd.services.tasks.v1.CreateTaskRequest", "runtime_path", 10, protoreflect.StringKind, false},
		{"containerd.services.tasks.v1.KillRequest", "signal", 3, protoreflect.Uint32Kind, false},
		{"containerd.task.v2.CreateTaskRequest", "options", 10, protoreflect.MessageKind, false},
		{"containerd.task.v2.StateResponse", "status", 4, protoreflect.EnumKind, false},
		{"containerd.task.v2.StateResponse", "exec_id", 11, protoreflect.StringKind, false},
		{"containerd.task.v2.ConnectResponse", "version", 3, protoreflect.StringKind, false},
		// The shim bootstrap of containerd 2.3+, and the runc shim's options.
		{"containerd.runtime.bootstrap.v1.BootstrapParams", "instance_id", 1, protoreflect.StringKind, false},
		{"containerd.runtime.bootstrap.v1.BootstrapParams", "log_level", 3, protoreflect.EnumKind, false},
		{"containerd.runtime.bootstrap.v1.BootstrapParams", "containerd_binary", 7, protoreflect.StringKind, false},
		{"containerd.runtime.bootstrap.v1.BootstrapParams", "extensions", 8, protoreflect.MessageKind, true},
		{"containerd.runtime.bootstrap.v1.BootstrapParams", "socket_dir", 9, protoreflect.StringKind, false},
		{"containerd.runtime.bootstrap.v1.Extension", "value", 1, protoreflect.MessageKind, false},
		{"containerd.runtime.bootstrap.v1.BootstrapResult", "version", 1, protoreflect.Int32Kind, false},
		{"containerd.runtime.bootstrap.v1.BootstrapResult", "protocol", 3, protoreflect.StringKind, false},
		{"containerd.runtime.bootstrap.v1.BootstrapResult", "metadata", 5, protoreflect.MessageKind, true},
		{"containerd.runc.v1.Options", "binary_name", 6, protoreflect.StringKind, false},
		{"containerd.runc.v1.Options", "systemd_cgroup", 9, protoreflect.BoolKind, false},
		{"containerd.runc.v1.Options", "criu_work_path", 11, protoreflect.StringKind, false},
		{"containerd.runc.v1.CheckpointOptions", "empty_namespaces", 6, protoreflect.StringKind, true},
		{"containerd.runc.v1.ProcessDetails", "exec_id", 1, protoreflect.StringKind, false},
		{"containerd.events.TaskExit", "exit_status", 4, protoreflect.Uint32Kind, false},
		{"containerd.events.TaskDelete", "id", 5, protoreflect.StringKind, false},
		{"containerd.events.SnapshotPrepare", "snapshotter", 5, protoreflect.StringKind, false},
		{"containerd.events.ContentCreate", "mediaType", 3, protoreflect.StringKind, false},
		// Image events live in the images service package upstream; their
		// full names appear in event type URLs.
		{"containerd.services.images.v1.ImageCreate", "name", 1, protoreflect.StringKind, false},
		// The transfer service and the objects ctr 2.x sends it; their
		// full names are the type URLs of the Any the service receives.
		{"containerd.services.transfer.v1.TransferRequest", "source", 1, protoreflect.MessageKind, false},
		{"containerd.services.transfer.v1.TransferRequest", "destination", 2, protoreflect.MessageKind, false},
		{"containerd.services.transfer.v1.TransferRequest", "options", 3, protoreflect.MessageKind, false},
		{"containerd.services.transfer.v1.TransferOptions", "progress_stream", 1, protoreflect.StringKind, false},
		{"containerd.services.streaming.v1.StreamInit", "id", 1, protoreflect.StringKind, false},
		{"containerd.types.transfer.OCIRegistry", "reference", 1, protoreflect.StringKind, false},
		{"containerd.types.transfer.OCIRegistry", "resolver", 2, protoreflect.MessageKind, false},
		{"containerd.types.transfer.RegistryResolver", "auth_stream", 1, protoreflect.StringKind, false},
		{"containerd.types.transfer.RegistryResolver", "headers", 2, protoreflect.MessageKind, true},
		{"containerd.types.transfer.RegistryResolver", "host_dir", 3, protoreflect.StringKind, false},
		{"containerd.types.transfer.RegistryResolver", "default_scheme", 4, protoreflect.StringKind, false},
		{"containerd.types.transfer.RegistryResolver", "http_debug", 5, protoreflect.EnumKind, false},
		{"containerd.types.transfer.RegistryResolver", "logs_stream", 6, protoreflect.StringKind, false},
		{"containerd.types.transfer.AuthRequest", "host", 1, protoreflect.StringKind, false},
		{"containerd.types.transfer.AuthRequest", "reference", 2, protoreflect.StringKind, false},
		{"containerd.types.transfer.AuthRequest", "wwwauthenticate", 3, protoreflect.StringKind, true},
		{"containerd.types.transfer.AuthResponse", "authType", 1, protoreflect.EnumKind, false},
		{"containerd.types.transfer.AuthResponse", "secret", 2, protoreflect.StringKind, false},
		{"containerd.types.transfer.AuthResponse", "username", 3, protoreflect.StringKind, false},
		{"containerd.types.transfer.AuthResponse", "expire_at", 4, protoreflect.MessageKind, false},
		{"containerd.types.transfer.ImageStore", "name", 1, protoreflect.StringKind, false},
		{"containerd.types.transfer.ImageStore", "labels", 2, protoreflect.MessageKind, true},
		{"containerd.types.transfer.ImageStore", "platforms", 3, protoreflect.MessageKind, true},
		{"containerd.types.transfer.ImageStore", "all_metadata", 4, protoreflect.BoolKind, false},
		{"containerd.types.transfer.ImageStore", "manifest_limit", 5, protoreflect.Uint32Kind, false},
		{"containerd.types.transfer.ImageStore", "extra_references", 6, protoreflect.MessageKind, true},
		{"containerd.types.transfer.ImageStore", "unpacks", 10, protoreflect.MessageKind, true},
		{"containerd.types.transfer.UnpackConfiguration", "platform", 1, protoreflect.MessageKind, false},
		{"containerd.types.transfer.UnpackConfiguration", "snapshotter", 2, protoreflect.StringKind, false},
		{"containerd.types.transfer.ImageReference", "name", 1, protoreflect.StringKind, false},
		{"containerd.types.transfer.ImageReference", "is_prefix", 2, protoreflect.BoolKind, false},
		{"containerd.types.transfer.ImageReference", "allow_overwrite", 3, protoreflect.BoolKind, false},
		{"containerd.types.transfer.ImageReference", "add_digest", 4, protoreflect.BoolKind, false},
		{"containerd.types.transfer.ImageReference", "skip_named_digest", 5, protoreflect.BoolKind, false},
		{"containerd.types.transfer.ImageImportStream", "stream", 1, protoreflect.StringKind, false},
		{"containerd.types.transfer.ImageImportStream", "media_type", 2, protoreflect.StringKind, false},
		{"containerd.types.transfer.ImageImportStream", "force_compress", 3, protoreflect.BoolKind, false},
		{"containerd.types.transfer.ImageExportStream", "stream", 1, protoreflect.StringKind, false},
		{"containerd.types.transfer.ImageExportStream", "media_type", 2, protoreflect.StringKind, false},
		{"containerd.types.transfer.ImageExportStream", "platforms", 3, protoreflect.MessageKind, true},
		{"containerd.types.transfer.ImageExportStream", "all_platforms", 4, protoreflect.BoolKind, false},
		{"containerd.types.transfer.ImageExportStream", "skip_compatibility_manifest", 5, protoreflect.BoolKind, false},
		{"containerd.types.transfer.ImageExportStream", "skip_non_distributable", 6, protoreflect.BoolKind, false},
		{"containerd.types.transfer.Progress", "event", 1, protoreflect.StringKind, false},
		{"containerd.types.transfer.Progress", "name", 2, protoreflect.StringKind, false},
		{"containerd.types.transfer.Progress", "parents", 3, protoreflect.StringKind, true},
		{"containerd.types.transfer.Progress", "progress", 4, protoreflect.Int64Kind, false},
		{"containerd.types.transfer.Progress", "total", 5, protoreflect.Int64Kind, false},
		{"containerd.types.transfer.Progress", "desc", 6, protoreflect.MessageKind, false},
		{"containerd.types.transfer.Data", "data", 1, protoreflect.BytesKind, false},
		{"containerd.types.transfer.WindowUpdate", "update", 1, protoreflect.Int32Kind, false},
		{"containerd.types.transfer.ReadStream", "media_type", 2, protoreflect.StringKind, false},
		{"containerd.types.transfer.WriteStream", "media_type", 2, protoreflect.StringKind, false},
		{"containerd.types.transfer.ContainerPath", "preserve_ownership", 4, protoreflect.BoolKind, false},
	} {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(tc.message))
		if err != nil {
			t.Errorf("%s: message not registered: %v", tc.message, err)
			continue
		}
		fd := d.(protoreflect.MessageDescriptor).Fields().ByName(protoreflect.Name(tc.field))
		if fd == nil {
			t.Errorf("%s.%s: field missing", tc.message, tc.field)
			continue
		}
		if fd.Number() != tc.number {
			t.Errorf("%s.%s: number %d, want %d", tc.message, tc.field, fd.Number(), tc.number)
		}
		if fd.Kind() != tc.kind {
			t.Errorf("%s.%s: kind %v, want %v", tc.message, tc.field, fd.Kind(), tc.kind)
		}
		if isList := fd.IsList() || fd.IsMap(); isList != tc.list {
			t.Errorf("%s.%s: repeated/map %v, want %v", tc.message, tc.field, isList, tc.list)
		}
	}
}

// The transfer enums travel as numbers.
func TestTransferEnums(t *testing.T) {
	for enum, values := range map[protoreflect.FullName]map[protoreflect.Name]protoreflect.EnumNumber{
		"containerd.types.transfer.HTTPDebug": {"DISABLED": 0, "DEBUG": 1, "TRACE": 2, "BOTH": 3},
		"containerd.types.transfer.AuthType":  {"NONE": 0, "CREDENTIALS": 1, "REFRESH": 2, "HEADER": 3},
	} {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(enum)
		if err != nil {
			t.Fatal(err)
		}
		got := d.(protoreflect.EnumDescriptor).Values()
		if got.Len() != len(values) {
			t.Errorf("%s: %d values, want %d", enum, got.Len(), len(values))
		}
		for name, n := range values {
			if v := got.ByName(name); v == nil || v.Number() != n {
				t.Errorf("%s.%s: want %d", enum, name, n)
			}
		}
	}
}

// The shim's Status enum values travel as numbers; ctr maps them to names.
func TestTaskStatusEnum(t *testing.T) {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName("containerd.v1.types.Status")
	if err != nil {
		t.Fatal(err)
	}
	values := d.(protoreflect.EnumDescriptor).Values()
	for name, n := range map[protoreflect.Name]protoreflect.EnumNumber{
		"UNKNOWN": 0, "CREATED": 1, "RUNNING": 2, "STOPPED": 3, "PAUSED": 4, "PAUSING": 5,
	} {
		v := values.ByName(name)
		if v == nil || v.Number() != n {
			t.Errorf("Status.%s: want %d", name, n)
		}
	}
}
