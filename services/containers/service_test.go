package containers

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	eventstypes "github.com/llitfkitfk/containerd/api/events"
	api "github.com/llitfkitfk/containerd/api/services/containers/v1"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/metadata"
	"github.com/llitfkitfk/containerd/namespaces"
)

type published struct {
	ns, topic string
	event     events.Event
}

type fakePublisher struct {
	mu     sync.Mutex
	events []published
}

func (p *fakePublisher) Publish(ctx context.Context, topic string, ev events.Event) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, published{ns, topic, ev})
	return nil
}

func (p *fakePublisher) take() []published {
	p.mu.Lock()
	defer p.mu.Unlock()
	evs := p.events
	p.events = nil
	return evs
}

// setup serves the service over the bolt store of a fresh database.
func setup(t *testing.T) (*fakePublisher, api.ContainersClient) {
	db, err := metadata.Open(context.Background(), filepath.Join(t.TempDir(), "meta.db"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := &fakePublisher{}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	newService(metadata.NewContainerStore(db), pub).Register(srv)
	go srv.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); srv.Stop(); db.Close() })
	return pub, api.NewContainersClient(conn)
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if got := status.Code(err); got != code {
		t.Fatalf("got %v (%v), want %v", got, err, code)
	}
}

var (
	spec    = &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec", Value: []byte(`{}`)}
	options = &anypb.Any{TypeUrl: "containerd.runc.v1.Options", Value: []byte{0x0a, 0x01, 'x'}}
)

func newContainer(id string) *api.Container {
	return &api.Container{
		Id:          id,
		Labels:      map[string]string{"a": "b"},
		Image:       "docker.io/library/busybox:latest",
		Runtime:     &api.Container_Runtime{Name: "io.containerd.runc.v2", Options: options},
		Spec:        spec,
		Snapshotter: "overlayfs",
		SnapshotKey: id,
		Extensions:  map[string]*anypb.Any{"x": {TypeUrl: "x", Value: []byte("y")}},
		Sandbox:     "sb",
	}
}

func TestCreateGetListDelete(t *testing.T) {
	pub, c := setup(t)
	ctx := namespaces.WithNamespace(context.Background(), "ns")

	resp, err := c.Create(ctx, &api.CreateContainerRequest{Container: newContainer("c1")})
	if err != nil {
		t.Fatal(err)
	}
	created := resp.Container
	want := newContainer("c1")
	want.CreatedAt, want.UpdatedAt = created.CreatedAt, created.UpdatedAt
	if created.CreatedAt.AsTime().IsZero() || !proto.Equal(created, want) {
		t.Fatalf("created %v\nwant %v", created, want)
	}
	evs := pub.take()
	if len(evs) != 1 || evs[0].topic != "/containers/create" || evs[0].ns != "ns" {
		t.Fatalf("events %v", evs)
	}
	ev := evs[0].event.(*eventstypes.ContainerCreate)
	if ev.Id != "c1" || ev.Image != want.Image || ev.Runtime.GetName() != "io.containerd.runc.v2" || !proto.Equal(ev.Runtime.GetOptions(), options) {
		t.Fatalf("event %v", ev)
	}

	_, err = c.Create(ctx, &api.CreateContainerRequest{Container: newContainer("c1")})
	wantCode(t, err, codes.AlreadyExists)
	_, err = c.Create(ctx, &api.CreateContainerRequest{})
	wantCode(t, err, codes.InvalidArgument)
	noSpec := newContainer("c2")
	noSpec.Spec = nil
	_, err = c.Create(ctx, &api.CreateContainerRequest{Container: noSpec})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.Create(context.Background(), &api.CreateContainerRequest{Container: newContainer("c2")})
	wantCode(t, err, codes.FailedPrecondition)
	if evs := pub.take(); len(evs) != 0 {
		t.Fatalf("failed creates published %v", evs)
	}

	got, err := c.Get(ctx, &api.GetContainerRequest{Id: "c1"})
	if err != nil || !proto.Equal(got.Container, created) {
		t.Fatalf("get %v %v", got, err)
	}
	_, err = c.Get(ctx, &api.GetContainerRequest{Id: "nope"})
	wantCode(t, err, codes.NotFound)

	if _, err := c.Create(ctx, &api.CreateContainerRequest{Container: newContainer("c2")}); err != nil {
		t.Fatal(err)
	}
	list, err := c.List(ctx, &api.ListContainersRequest{Filters: []string{"id==c2"}})
	if err != nil || len(list.Containers) != 1 || list.Containers[0].Id != "c2" {
		t.Fatalf("list %v %v", list, err)
	}
	_, err = c.List(ctx, &api.ListContainersRequest{Filters: []string{"id=="}})
	wantCode(t, err, codes.InvalidArgument)

	stream, err := c.ListStream(ctx, &api.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, msg.Container.Id)
	}
	if len(ids) != 2 || ids[0] != "c1" || ids[1] != "c2" {
		t.Fatalf("streamed %v", ids)
	}

	pub.take()
	if _, err := c.Delete(ctx, &api.DeleteContainerRequest{Id: "c1"}); err != nil {
		t.Fatal(err)
	}
	if evs := pub.take(); len(evs) != 1 || evs[0].topic != "/containers/delete" || evs[0].event.(*eventstypes.ContainerDelete).Id != "c1" {
		t.Fatalf("delete events %v", evs)
	}
	_, err = c.Delete(ctx, &api.DeleteContainerRequest{Id: "c1"})
	wantCode(t, err, codes.NotFound)
	if evs := pub.take(); len(evs) != 0 {
		t.Fatalf("failed delete published %v", evs)
	}
}

func TestUpdate(t *testing.T) {
	pub, c := setup(t)
	ctx := namespaces.WithNamespace(context.Background(), "ns")
	if _, err := c.Create(ctx, &api.CreateContainerRequest{Container: newContainer("c1")}); err != nil {
		t.Fatal(err)
	}
	pub.take()

	// As `ctr containers label c1 a= x=y` sends it.
	resp, err := c.Update(ctx, &api.UpdateContainerRequest{
		Container:  &api.Container{Id: "c1", Labels: map[string]string{"x": "y"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels.a", "labels.x"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if l := resp.Container.Labels; len(l) != 1 || l["x"] != "y" || resp.Container.SnapshotKey != "c1" {
		t.Fatalf("updated %v", resp.Container)
	}
	evs := pub.take()
	if len(evs) != 1 || evs[0].topic != "/containers/update" {
		t.Fatalf("events %v", evs)
	}
	if ev := evs[0].event.(*eventstypes.ContainerUpdate); ev.Id != "c1" || ev.Labels["x"] != "y" || ev.SnapshotKey != "c1" || ev.Image != "docker.io/library/busybox:latest" {
		t.Fatalf("event %v", ev)
	}

	_, err = c.Update(ctx, &api.UpdateContainerRequest{
		Container:  &api.Container{Id: "c1", Runtime: &api.Container_Runtime{Name: "other"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"runtime"}},
	})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.Update(ctx, &api.UpdateContainerRequest{Container: &api.Container{}})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.Update(ctx, &api.UpdateContainerRequest{})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.Update(ctx, &api.UpdateContainerRequest{
		Container:  &api.Container{Id: "nope"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"image"}},
	})
	wantCode(t, err, codes.NotFound)
	if evs := pub.take(); len(evs) != 0 {
		t.Fatalf("failed updates published %v", evs)
	}
}
