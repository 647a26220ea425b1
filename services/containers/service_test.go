package containers

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	eventstypes "github.com/llitfkitfk/containerd/api/events"
	api "github.com/llitfkitfk/containerd/api/services/containers/v1"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/metadata"
	"github.com/llitfkitfk/containerd/namespaces"
)

// setup serves the service over the bolt store of a fresh database.
func setup(t *testing.T) (*testutil.Publisher, api.ContainersClient) {
	db, err := metadata.Open(context.Background(), filepath.Join(t.TempDir(), "meta.db"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	pub := &testutil.Publisher{}
	svc := &service{local: NewLocal(metadata.NewContainerStore(db), pub)}
	return pub, api.NewContainersClient(testutil.Serve(t, svc.Register))
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
	evs := pub.Take()
	if len(evs) != 1 || evs[0].Topic != "/containers/create" || evs[0].Namespace != "ns" {
		t.Fatalf("events %v", evs)
	}
	ev := evs[0].Event.(*eventstypes.ContainerCreate)
	if ev.Id != "c1" || ev.Image != want.Image || ev.Runtime.GetName() != "io.containerd.runc.v2" || !proto.Equal(ev.Runtime.GetOptions(), options) {
		t.Fatalf("event %v", ev)
	}

	_, err = c.Create(ctx, &api.CreateContainerRequest{Container: newContainer("c1")})
	testutil.WantCode(t, err, codes.AlreadyExists)
	_, err = c.Create(ctx, &api.CreateContainerRequest{})
	testutil.WantCode(t, err, codes.InvalidArgument)
	noSpec := newContainer("c2")
	noSpec.Spec = nil
	_, err = c.Create(ctx, &api.CreateContainerRequest{Container: noSpec})
	testutil.WantCode(t, err, codes.InvalidArgument)
	_, err = c.Create(context.Background(), &api.CreateContainerRequest{Container: newContainer("c2")})
	testutil.WantCode(t, err, codes.FailedPrecondition)
	if evs := pub.Take(); len(evs) != 0 {
		t.Fatalf("failed creates published %v", evs)
	}

	got, err := c.Get(ctx, &api.GetContainerRequest{Id: "c1"})
	if err != nil || !proto.Equal(got.Container, created) {
		t.Fatalf("get %v %v", got, err)
	}
	_, err = c.Get(ctx, &api.GetContainerRequest{Id: "nope"})
	testutil.WantCode(t, err, codes.NotFound)

	if _, err := c.Create(ctx, &api.CreateContainerRequest{Container: newContainer("c2")}); err != nil {
		t.Fatal(err)
	}
	list, err := c.List(ctx, &api.ListContainersRequest{Filters: []string{"id==c2"}})
	if err != nil || len(list.Containers) != 1 || list.Containers[0].Id != "c2" {
		t.Fatalf("list %v %v", list, err)
	}
	_, err = c.List(ctx, &api.ListContainersRequest{Filters: []string{"id=="}})
	testutil.WantCode(t, err, codes.InvalidArgument)

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

	pub.Take()
	if _, err := c.Delete(ctx, &api.DeleteContainerRequest{Id: "c1"}); err != nil {
		t.Fatal(err)
	}
	if evs := pub.Take(); len(evs) != 1 || evs[0].Topic != "/containers/delete" || evs[0].Event.(*eventstypes.ContainerDelete).Id != "c1" {
		t.Fatalf("delete events %v", evs)
	}
	_, err = c.Delete(ctx, &api.DeleteContainerRequest{Id: "c1"})
	testutil.WantCode(t, err, codes.NotFound)
	if evs := pub.Take(); len(evs) != 0 {
		t.Fatalf("failed delete published %v", evs)
	}
}

func TestUpdate(t *testing.T) {
	pub, c := setup(t)
	ctx := namespaces.WithNamespace(context.Background(), "ns")
	if _, err := c.Create(ctx, &api.CreateContainerRequest{Container: newContainer("c1")}); err != nil {
		t.Fatal(err)
	}
	pub.Take()

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
	evs := pub.Take()
	if len(evs) != 1 || evs[0].Topic != "/containers/update" {
		t.Fatalf("events %v", evs)
	}
	if ev := evs[0].Event.(*eventstypes.ContainerUpdate); ev.Id != "c1" || ev.Labels["x"] != "y" || ev.SnapshotKey != "c1" || ev.Image != "docker.io/library/busybox:latest" {
		t.Fatalf("event %v", ev)
	}

	_, err = c.Update(ctx, &api.UpdateContainerRequest{
		Container:  &api.Container{Id: "c1", Runtime: &api.Container_Runtime{Name: "other"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"runtime"}},
	})
	testutil.WantCode(t, err, codes.InvalidArgument)
	_, err = c.Update(ctx, &api.UpdateContainerRequest{Container: &api.Container{}})
	testutil.WantCode(t, err, codes.InvalidArgument)
	_, err = c.Update(ctx, &api.UpdateContainerRequest{})
	testutil.WantCode(t, err, codes.InvalidArgument)
	_, err = c.Update(ctx, &api.UpdateContainerRequest{
		Container:  &api.Container{Id: "nope"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"image"}},
	})
	testutil.WantCode(t, err, codes.NotFound)
	if evs := pub.Take(); len(evs) != 0 {
		t.Fatalf("failed updates published %v", evs)
	}
}
