package content

import (
	"context"
	"io"
	"reflect"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	eventstypes "github.com/llitfkitfk/containerd/api/events"
	api "github.com/llitfkitfk/containerd/api/services/content/v1"
	"github.com/llitfkitfk/containerd/internal/testutil"
)

func TestInfoAndUpdate(t *testing.T) {
	f := newFixture(t)
	dgst := f.store.put(testNS, []byte("blob"), map[string]string{"a": "1", "b": "2"})
	ctx := nsCtx()

	info, err := f.client.Info(ctx, &api.InfoRequest{Digest: dgst.String()})
	if err != nil {
		t.Fatal(err)
	}
	if info.Info.Digest != dgst.String() || info.Info.Size != 4 || info.Info.CreatedAt == nil || !reflect.DeepEqual(info.Info.Labels, map[string]string{"a": "1", "b": "2"}) {
		t.Fatalf("info: %v", info.Info)
	}

	// One label by path: set a, drop b, keep the rest.
	up, err := f.client.Update(ctx, &api.UpdateRequest{
		Info:       &api.Info{Digest: dgst.String(), Labels: map[string]string{"a": "x"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels.a", "labels.b"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(up.Info.Labels, map[string]string{"a": "x"}) {
		t.Fatalf("labels after update: %v", up.Info.Labels)
	}
	// No mask: all labels replaced.
	up, err = f.client.Update(ctx, &api.UpdateRequest{Info: &api.Info{Digest: dgst.String(), Labels: map[string]string{"c": "3"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(up.Info.Labels, map[string]string{"c": "3"}) {
		t.Fatalf("labels after replace: %v", up.Info.Labels)
	}

	_, err = f.client.Info(ctx, &api.InfoRequest{Digest: digest.FromString("absent").String()})
	testutil.WantCode(t, err, codes.NotFound)
	_, err = f.client.Info(ctx, &api.InfoRequest{Digest: "not-a-digest"})
	testutil.WantCode(t, err, codes.InvalidArgument)
	_, err = f.client.Update(ctx, &api.UpdateRequest{})
	testutil.WantCode(t, err, codes.InvalidArgument)
	_, err = f.client.Update(ctx, &api.UpdateRequest{Info: &api.Info{Digest: "bad"}})
	testutil.WantCode(t, err, codes.InvalidArgument)
	_, err = f.client.Info(context.Background(), &api.InfoRequest{Digest: dgst.String()})
	testutil.WantCode(t, err, codes.FailedPrecondition)
}

func TestListBatches(t *testing.T) {
	f := newFixture(t)
	want := map[string]bool{}
	for i := range 250 {
		want[f.store.put(testNS, []byte{byte(i), byte(i >> 8)}, nil).String()] = true
	}
	f.store.put("elsewhere", []byte("not listed"), nil)

	ls, err := f.client.List(nsCtx(), &api.ListContentRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for {
		resp, err := ls.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(resp.Info))
		for _, info := range resp.Info {
			if !want[info.Digest] {
				t.Fatalf("unexpected or repeated %s", info.Digest)
			}
			delete(want, info.Digest)
		}
	}
	if !reflect.DeepEqual(sizes, []int{100, 100, 50}) || len(want) != 0 {
		t.Fatalf("batches %v, %d missing", sizes, len(want))
	}

	ls, err = f.client.List(context.Background(), &api.ListContentRequest{})
	if err == nil {
		_, err = ls.Recv()
	}
	testutil.WantCode(t, err, codes.FailedPrecondition)
}

func TestDeletePublishes(t *testing.T) {
	f := newFixture(t)
	dgst := f.store.put(testNS, []byte("doomed"), nil)
	if _, err := f.client.Delete(nsCtx(), &api.DeleteContentRequest{Digest: dgst.String()}); err != nil {
		t.Fatal(err)
	}
	evs := f.pub.Take()
	if len(evs) != 1 || evs[0].Topic != "/content/delete" || evs[0].Namespace != testNS {
		t.Fatalf("events %v", evs)
	}
	if ev, ok := evs[0].Event.(*eventstypes.ContentDelete); !ok || ev.Digest != dgst.String() {
		t.Fatalf("event %v", evs[0].Event)
	}
	_, err := f.client.Delete(nsCtx(), &api.DeleteContentRequest{Digest: dgst.String()})
	testutil.WantCode(t, err, codes.NotFound)
	_, err = f.client.Delete(nsCtx(), &api.DeleteContentRequest{Digest: "sha256:zz"})
	testutil.WantCode(t, err, codes.InvalidArgument)
	if len(f.pub.Take()) != 0 {
		t.Fatal("failed deletes published events")
	}
}

func TestRead(t *testing.T) {
	f := newFixture(t)
	data := randomBytes(2<<20+100, 6)
	dgst := f.store.put(testNS, data, nil)

	read := func(offset, size int64) ([]*api.ReadContentResponse, error) {
		rc, err := f.client.Read(nsCtx(), &api.ReadContentRequest{Digest: dgst.String(), Offset: offset, Size: size})
		if err != nil {
			return nil, err
		}
		var out []*api.ReadContentResponse
		for {
			resp, err := rc.Recv()
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return out, err
			}
			out = append(out, resp)
		}
	}
	check := func(offset, size int64, want []byte) {
		t.Helper()
		chunk := largeReadChunk
		if len(want) <= smallReadChunk {
			chunk = smallReadChunk
		}
		chunks := (len(want) + chunk - 1) / chunk
		msgs, err := read(offset, size)
		if err != nil {
			t.Fatalf("read %d+%d: %v", offset, size, err)
		}
		var got []byte
		for _, m := range msgs {
			if m.Offset != int64(len(got)) {
				t.Fatalf("read %d+%d: message offset %d after %d bytes", offset, size, m.Offset, len(got))
			}
			if len(m.Data) > chunk {
				t.Fatalf("chunk of %d bytes", len(m.Data))
			}
			got = append(got, m.Data...)
		}
		if string(got) != string(want) || len(msgs) != chunks {
			t.Fatalf("read %d+%d: %d bytes in %d messages, want %d in %d", offset, size, len(got), len(msgs), len(want), chunks)
		}
	}
	n := int64(len(data))
	check(0, 0, data)
	check(10, 0, data[10:])
	check(10, 20, data[10:30])
	check(n-5, 100, data[n-5:])
	check(1<<20, 1<<20, data[1<<20:2<<20])
	check(n, 0, nil)
	check(-3, 4, data[:4])

	_, err := read(n+1, 0)
	testutil.WantCode(t, err, codes.InvalidArgument)
	rc, err := f.client.Read(nsCtx(), &api.ReadContentRequest{Digest: digest.FromString("x").String()})
	if err == nil {
		_, err = rc.Recv()
	}
	testutil.WantCode(t, err, codes.NotFound)
}

// Only a few Read streams at a time use large chunks; the others, however
// many, use small ones, so that clients that stop reading cannot make the
// daemon hold three large chunks each.
func TestReadChunkBudget(t *testing.T) {
	store := newFakeStore()
	dgst := store.put(testNS, randomBytes(4<<20, 7), nil)
	// A client that does not read keeps its window as it is, so the
	// daemon can send no more than that.
	lis := testutil.Listen(t, newService(store).Register)
	client := api.NewContentClient(testutil.Dial(t, lis, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10)))
	ctx, cancel := context.WithCancel(nsCtx())
	defer cancel()
	firstChunk := func() int {
		t.Helper()
		rc, err := client.Read(ctx, &api.ReadContentRequest{Digest: dgst.String()})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := rc.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Data)
	}
	// Streams left unread hold their large chunks, until the budget is
	// spent.
	for i := 0; i < largeReaders; i++ {
		if n := firstChunk(); n != largeReadChunk {
			t.Fatalf("stream %d: first chunk of %d bytes, want %d", i, n, largeReadChunk)
		}
	}
	for i := 0; i < 3; i++ {
		if n := firstChunk(); n != smallReadChunk {
			t.Fatalf("stream beyond the budget: first chunk of %d bytes, want %d", n, smallReadChunk)
		}
	}
	// When the unread streams go, their budget comes back.
	cancel()
	ctx, cancel = context.WithCancel(nsCtx())
	defer cancel()
	deadline := time.Now().Add(5 * time.Second)
	for firstChunk() != largeReadChunk {
		if time.Now().After(deadline) {
			t.Fatal("the large chunks' budget did not come back once the streams ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStatusesAndAbort(t *testing.T) {
	f := newFixture(t)
	s := f.open(t, nsCtx())
	s.do(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Ref: "a", Total: 10, Expected: digest.FromString("0123456789").String(), Data: []byte("01234")})
	s.CloseSend()
	s.Recv()
	f.waitUnlocked(t)

	st, err := f.client.Status(nsCtx(), &api.StatusRequest{Ref: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.Ref != "a" || st.Status.Offset != 5 || st.Status.Total != 10 || st.Status.StartedAt == nil {
		t.Fatalf("status %v", st.Status)
	}
	ls, err := f.client.ListStatuses(nsCtx(), &api.ListStatusesRequest{})
	if err != nil || len(ls.Statuses) != 1 || ls.Statuses[0].Ref != "a" {
		t.Fatalf("list statuses %v %v", ls, err)
	}
	_, err = f.client.Status(nsCtx(), &api.StatusRequest{Ref: "b"})
	testutil.WantCode(t, err, codes.NotFound)

	if _, err := f.client.Abort(nsCtx(), &api.AbortRequest{Ref: "a"}); err != nil {
		t.Fatal(err)
	}
	_, err = f.client.Abort(nsCtx(), &api.AbortRequest{Ref: "a"})
	testutil.WantCode(t, err, codes.NotFound)
	ls, err = f.client.ListStatuses(nsCtx(), &api.ListStatusesRequest{})
	if err != nil || len(ls.Statuses) != 0 {
		t.Fatalf("list statuses after abort %v %v", ls, err)
	}
}
