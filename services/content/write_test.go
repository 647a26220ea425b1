package content

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	api "github.com/llitfkitfk/containerd/api/services/content/v1"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/internal/testutil"
)

const testNS = "test"

func nsCtx() context.Context { return testutil.NS(testNS) }

func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// bothModes runs fn with write-behind on and off.
func bothModes(t *testing.T, fn func(t *testing.T)) {
	for _, depth := range []int{2, 0} {
		t.Run(fmt.Sprintf("writeBehind=%d", depth), func(t *testing.T) {
			old := writeBehind
			writeBehind = depth
			defer func() { writeBehind = old }()
			fn(t)
		})
	}
}

type fixture struct {
	store  *fakeStore
	pub    *testutil.Publisher
	client api.ContentClient
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{store: newFakeStore(), pub: &testutil.Publisher{}}
	f.client = api.NewContentClient(testutil.Serve(t, newService(NewLocal(f.store, f.pub)).Register))
	return f
}

type writeStream struct {
	t *testing.T
	api.Content_WriteClient
}

// open opens a Write stream that asks for write-behind, which bothModes
// turns on or off.
func (f *fixture) open(t *testing.T, ctx context.Context) *writeStream {
	t.Helper()
	s, err := f.client.Write(metadata.AppendToOutgoingContext(ctx, content.WriteBehindHeader, "1"))
	if err != nil {
		t.Fatal(err)
	}
	return &writeStream{t, s}
}

func (s *writeStream) tryDo(req *api.WriteContentRequest) (*api.WriteContentResponse, error) {
	if err := s.Send(req); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	// A failed send reports io.EOF; the status comes from Recv.
	return s.Recv()
}

func (s *writeStream) do(req *api.WriteContentRequest) *api.WriteContentResponse {
	s.t.Helper()
	resp, err := s.tryDo(req)
	if err != nil {
		s.t.Fatalf("%v at %d: %v", req.Action, req.Offset, err)
	}
	if resp.Action != req.Action {
		s.t.Fatalf("answer to %v echoes %v", req.Action, resp.Action)
	}
	return resp
}

// writeChunks sends data from offset in chunks and checks each answer.
func (s *writeStream) writeChunks(data []byte, offset int64, chunk int) {
	s.t.Helper()
	for len(data) > 0 {
		n := min(chunk, len(data))
		resp := s.do(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Offset: offset, Data: data[:n]})
		offset += int64(n)
		if resp.Offset != offset {
			s.t.Fatalf("write answered offset %d, want %d", resp.Offset, offset)
		}
		data = data[n:]
	}
}

// waitUnlocked waits for the server to have closed every writer: after a
// client goes away the server notices on its own time.
func (f *fixture) waitUnlocked(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.store.openWriters() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d writers still open", f.store.openWriters())
		}
		time.Sleep(time.Millisecond)
	}
}

func (f *fixture) readAll(t *testing.T, d digest.Digest) []byte {
	t.Helper()
	rc, err := f.client.Read(nsCtx(), &api.ReadContentRequest{Digest: d.String()})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for {
		resp, err := rc.Recv()
		if err == io.EOF {
			return buf.Bytes()
		}
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(resp.Data)
	}
}

func TestWriteCommit(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		f := newFixture(t)
		data := randomBytes(3<<20+12345, 1)
		dgst := digest.FromBytes(data)
		total := int64(len(data))

		s := f.open(t, nsCtx())
		st := s.do(&api.WriteContentRequest{Action: api.WriteAction_STAT, Ref: "r1", Total: total, Expected: dgst.String()})
		if st.Offset != 0 || st.Total != total || st.StartedAt == nil || st.UpdatedAt == nil {
			t.Fatalf("stat: %v", st)
		}
		s.writeChunks(data, 0, 1<<20)
		c := s.do(&api.WriteContentRequest{Action: api.WriteAction_COMMIT, Offset: total, Total: total, Expected: dgst.String(), Labels: map[string]string{"k": "v"}})
		if c.Digest != dgst.String() || c.Offset != total || c.Total != total || c.StartedAt == nil || c.UpdatedAt == nil {
			t.Fatalf("commit: %v", c)
		}
		if _, err := s.Recv(); err != io.EOF {
			t.Fatalf("after commit: %v", err)
		}

		info, err := f.client.Info(nsCtx(), &api.InfoRequest{Digest: dgst.String()})
		if err != nil {
			t.Fatal(err)
		}
		if info.Info.Size != total || info.Info.Labels["k"] != "v" {
			t.Fatalf("info: %v", info.Info)
		}
		if got := f.readAll(t, dgst); !bytes.Equal(got, data) {
			t.Fatal("read back different bytes")
		}
		f.waitUnlocked(t)
		if _, err := f.client.Status(nsCtx(), &api.StatusRequest{Ref: "r1"}); status.Code(err) != codes.NotFound {
			t.Fatalf("ingest left after commit: %v", err)
		}
	})
}

// openSlow opens a stream on ref with a store that takes 20ms a write, so
// that with write-behind a chunk is written well after its WRITE's answer.
func openSlow(t *testing.T, ref string) (*fixture, *writeStream) {
	f := newFixture(t)
	f.store.delay = 20 * time.Millisecond
	s := f.open(t, nsCtx())
	s.do(&api.WriteContentRequest{Action: api.WriteAction_STAT, Ref: ref})
	return f, s
}

// What a stream has acknowledged is what everyone sees: a Status or
// ListStatuses on another stream, right after a WRITE's answer, reports
// its offset though the store, slow here, has not written the chunk yet.
func TestStatusSeesAcknowledgedWrites(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		f, s := openSlow(t, "r")
		chunk := randomBytes(4096, 2)
		for offset := int64(0); offset < 5*4096; offset += 4096 {
			resp := s.do(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Offset: offset, Data: chunk})
			st, err := f.client.Status(nsCtx(), &api.StatusRequest{Ref: "r"})
			if err != nil || st.Status.Offset != resp.Offset {
				t.Fatalf("status after a write answered with offset %d: %v, %v", resp.Offset, st, err)
			}
		}
		resp := s.do(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Offset: 5 * 4096, Data: chunk})
		list, err := f.client.ListStatuses(nsCtx(), &api.ListStatusesRequest{})
		if err != nil || len(list.Statuses) != 1 || list.Statuses[0].Offset != resp.Offset {
			t.Fatalf("statuses after a write answered with offset %d: %v, %v", resp.Offset, list, err)
		}
	})
}

// With write-behind the store writes a chunk after its WRITE is answered,
// but the ingest's update time is still one the client saw go by, within
// its write, as containerd's clients check (its content test suite's
// UpdateStatus case failed now and then on this).
func TestWriteUpdatedAtIsWithinTheWrite(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		_, s := openSlow(t, "r")
		chunk := randomBytes(4096, 3)
		for offset := int64(0); offset < 3*4096; offset += 4096 {
			before := time.Now()
			s.do(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Offset: offset, Data: chunk})
			after := time.Now()
			st := s.do(&api.WriteContentRequest{Action: api.WriteAction_STAT})
			if at := st.UpdatedAt.AsTime(); at.Before(before) || at.After(after) {
				t.Fatalf("write at %d: UpdatedAt %v, want within the write, [%v, %v]", offset, at, before, after)
			}
		}
	})
}

// The benchmark's client: no STAT, the first WRITE names the ref.
func TestWriteFirstMessageIsWrite(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		f := newFixture(t)
		data := randomBytes(100, 2)
		dgst := digest.FromBytes(data)
		s := f.open(t, nsCtx())
		r := s.do(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Ref: "r", Total: 100, Expected: dgst.String(), Data: data})
		if r.Offset != 100 {
			t.Fatalf("offset %d", r.Offset)
		}
		if c := s.do(&api.WriteContentRequest{Action: api.WriteAction_COMMIT, Offset: 100}); c.Digest != dgst.String() {
			t.Fatalf("commit: %v", c)
		}
	})
}

func TestWriteResume(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		f := newFixture(t)
		data := randomBytes(5<<20, 3)
		dgst := digest.FromBytes(data)
		half := int64(2 << 20)

		s := f.open(t, nsCtx())
		s.do(&api.WriteContentRequest{Action: api.WriteAction_STAT, Ref: "r", Total: int64(len(data)), Expected: dgst.String()})
		s.writeChunks(data[:half], 0, 1<<20)
		s.CloseSend()
		if _, err := s.Recv(); err != io.EOF {
			t.Fatalf("end of stream: %v", err)
		}
		f.waitUnlocked(t)
		st, err := f.client.Status(nsCtx(), &api.StatusRequest{Ref: "r"})
		if err != nil {
			t.Fatal(err)
		}
		if st.Status.Offset != half || st.Status.Total != int64(len(data)) || st.Status.Expected != dgst.String() {
			t.Fatalf("status after first stream: %v", st.Status)
		}

		s = f.open(t, nsCtx())
		r := s.do(&api.WriteContentRequest{Action: api.WriteAction_STAT, Ref: "r"})
		if r.Offset != half {
			t.Fatalf("resumed at %d, want %d", r.Offset, half)
		}
		if r.Digest != digest.FromBytes(data[:half]).String() {
			t.Fatalf("stat digest %s is not that of what was written", r.Digest)
		}
		s.writeChunks(data[half:], half, 1<<20)
		c := s.do(&api.WriteContentRequest{Action: api.WriteAction_COMMIT, Offset: int64(len(data)), Total: int64(len(data)), Expected: dgst.String()})
		if c.Digest != dgst.String() {
			t.Fatalf("commit: %v", c)
		}
		if !bytes.Equal(f.readAll(t, dgst), data) {
			t.Fatal("resumed blob differs")
		}
	})
}

func TestWriteWrongOffset(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		f := newFixture(t)
		s := f.open(t, nsCtx())
		s.do(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Ref: "r", Data: []byte("0123456789")})
		_, err := s.tryDo(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Offset: 5, Data: []byte("x")})
		testutil.WantCode(t, err, codes.FailedPrecondition)
		if !strings.Contains(err.Error(), "current offset 10") {
			t.Fatalf("message: %v", err)
		}
		// The error ended the stream and released the ref; what was
		// written stays for a resume.
		f.waitUnlocked(t)
		st, err := f.client.Status(nsCtx(), &api.StatusRequest{Ref: "r"})
		if err != nil || st.Status.Offset != 10 {
			t.Fatalf("status %v, %v", st, err)
		}
		// So does a write beyond the end.
		s = f.open(t, nsCtx())
		_, err = s.tryDo(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Ref: "r", Offset: 11, Data: []byte("x")})
		testutil.WantCode(t, err, codes.FailedPrecondition)
		f.waitUnlocked(t)
		// And a negative one.
		s = f.open(t, nsCtx())
		_, err = s.tryDo(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Ref: "r", Offset: -1, Data: []byte("x")})
		testutil.WantCode(t, err, codes.InvalidArgument)
	})
}

func TestWriteOffsetZeroTruncates(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		f := newFixture(t)
		s := f.open(t, nsCtx())
		s.do(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Ref: "r", Data: []byte("hello world")})
		s.do(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Offset: 11, Data: []byte("!")})
		if r := s.do(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Offset: 0, Data: []byte("bye")}); r.Offset != 3 {
			t.Fatalf("offset after restart %d", r.Offset)
		}
		c := s.do(&api.WriteContentRequest{Action: api.WriteAction_COMMIT, Offset: 3, Total: 3})
		if c.Digest != digest.FromString("bye").String() {
			t.Fatalf("commit: %v", c)
		}
	})
}

func TestWriteCommitMismatch(t *testing.T) {
	data := []byte("some content")
	dgst := digest.FromBytes(data)
	for name, req := range map[string]*api.WriteContentRequest{
		"size":   {Total: int64(len(data)) + 1, Expected: dgst.String()},
		"digest": {Total: int64(len(data)), Expected: digest.FromString("other").String()},
	} {
		t.Run(name, func(t *testing.T) {
			bothModes(t, func(t *testing.T) {
				f := newFixture(t)
				s := f.open(t, nsCtx())
				s.do(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Ref: "r", Data: data})
				_, err := s.tryDo(&api.WriteContentRequest{Action: api.WriteAction_COMMIT, Offset: int64(len(data)), Total: req.Total, Expected: req.Expected})
				testutil.WantCode(t, err, codes.FailedPrecondition)
				f.waitUnlocked(t)
				ls, err := f.client.List(nsCtx(), &api.ListContentRequest{})
				if err != nil {
					t.Fatal(err)
				}
				if r, err := ls.Recv(); err != io.EOF {
					t.Fatalf("a blob was committed: %v %v", r, err)
				}
				if _, err := f.client.Status(nsCtx(), &api.StatusRequest{Ref: "r"}); err != nil {
					t.Fatalf("ingest gone after a failed commit: %v", err)
				}
			})
		})
	}
}

func TestWriteDisconnect(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		f := newFixture(t)
		data := randomBytes(4<<20, 4)
		ctx, cancel := context.WithCancel(nsCtx())
		s := f.open(t, ctx)
		s.do(&api.WriteContentRequest{Action: api.WriteAction_STAT, Ref: "r", Total: int64(len(data))})
		s.writeChunks(data[:3<<20], 0, 1<<20)
		cancel()
		f.waitUnlocked(t)

		// What was acknowledged was written, and nothing was committed.
		st, err := f.client.Status(nsCtx(), &api.StatusRequest{Ref: "r"})
		if err != nil || st.Status.Offset != 3<<20 {
			t.Fatalf("status after disconnect: %v, %v", st, err)
		}
		if _, err := f.client.Info(nsCtx(), &api.InfoRequest{Digest: digest.FromBytes(data[:3<<20]).String()}); status.Code(err) != codes.NotFound {
			t.Fatalf("partial blob committed: %v", err)
		}

		s = f.open(t, nsCtx())
		if r := s.do(&api.WriteContentRequest{Action: api.WriteAction_STAT, Ref: "r"}); r.Offset != 3<<20 {
			t.Fatalf("resume offset %d", r.Offset)
		}
		s.writeChunks(data[3<<20:], 3<<20, 1<<20)
		if c := s.do(&api.WriteContentRequest{Action: api.WriteAction_COMMIT, Offset: int64(len(data)), Expected: digest.FromBytes(data).String()}); c.Digest != digest.FromBytes(data).String() {
			t.Fatalf("commit %v", c)
		}
	})
}

func TestWriteNeedsRef(t *testing.T) {
	f := newFixture(t)
	s := f.open(t, nsCtx())
	_, err := s.tryDo(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Data: []byte("x")})
	testutil.WantCode(t, err, codes.InvalidArgument)
	if f.store.openWriters() != 0 {
		t.Fatal("writer opened without a ref")
	}
}

func TestWriteNeedsNamespace(t *testing.T) {
	f := newFixture(t)
	s := f.open(t, context.Background())
	_, err := s.tryDo(&api.WriteContentRequest{Ref: "r"})
	testutil.WantCode(t, err, codes.FailedPrecondition)
}

func TestWriteBadExpected(t *testing.T) {
	f := newFixture(t)
	s := f.open(t, nsCtx())
	_, err := s.tryDo(&api.WriteContentRequest{Ref: "r", Expected: "sha256:nothex"})
	testutil.WantCode(t, err, codes.InvalidArgument)
}

func TestWriteUnknownAction(t *testing.T) {
	f := newFixture(t)
	s := f.open(t, nsCtx())
	_, err := s.tryDo(&api.WriteContentRequest{Ref: "r", Action: 7})
	testutil.WantCode(t, err, codes.InvalidArgument)
	f.waitUnlocked(t)
}

func TestWriteExpectedExists(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		f := newFixture(t)
		data := []byte("present")
		dgst := f.store.put(testNS, data, nil)

		// Declared up front: the store refuses the writer.
		s := f.open(t, nsCtx())
		_, err := s.tryDo(&api.WriteContentRequest{Ref: "r", Expected: dgst.String()})
		testutil.WantCode(t, err, codes.AlreadyExists)

		// Declared at commit, after another writer committed it: the
		// ingest is dropped.
		other := []byte("other")
		s = f.open(t, nsCtx())
		s.do(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Ref: "r2", Data: other})
		od := f.store.put(testNS, other, nil)
		_, err = s.tryDo(&api.WriteContentRequest{Action: api.WriteAction_COMMIT, Offset: int64(len(other)), Expected: od.String()})
		testutil.WantCode(t, err, codes.AlreadyExists)
		f.waitUnlocked(t)
		if _, err := f.client.Status(nsCtx(), &api.StatusRequest{Ref: "r2"}); status.Code(err) != codes.NotFound {
			t.Fatalf("ingest kept: %v", err)
		}
	})
}

func TestWriteRefLocked(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		f := newFixture(t)
		a := f.open(t, nsCtx())
		a.do(&api.WriteContentRequest{Ref: "r"})
		b := f.open(t, nsCtx())
		_, err := b.tryDo(&api.WriteContentRequest{Ref: "r"})
		testutil.WantCode(t, err, codes.Unavailable)
		a.CloseSend()
		if _, err := a.Recv(); err != io.EOF {
			t.Fatal(err)
		}
		f.waitUnlocked(t)
		c := f.open(t, nsCtx())
		c.do(&api.WriteContentRequest{Ref: "r"})
	})
}

// A store failure reaches the client on a later answer at the latest, the
// commit, and nothing is committed.
func TestWriteStoreFailure(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		f := newFixture(t)
		f.store.failAfter = 3<<20 + 1
		data := randomBytes(6<<20, 5)
		s := f.open(t, nsCtx())
		s.do(&api.WriteContentRequest{Ref: "r"})
		var err error
		off := int64(0)
		for ; off < int64(len(data)) && err == nil; off += 1 << 20 {
			_, err = s.tryDo(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Offset: off, Data: data[off : off+1<<20]})
		}
		if err == nil {
			_, err = s.tryDo(&api.WriteContentRequest{Action: api.WriteAction_COMMIT, Offset: off})
		}
		testutil.WantCode(t, err, codes.Unknown)
		if !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("error %v", err)
		}
		f.waitUnlocked(t)
		if _, err := f.client.Info(nsCtx(), &api.InfoRequest{Digest: digest.FromBytes(data).String()}); status.Code(err) != codes.NotFound {
			t.Fatalf("committed after a failed write: %v", err)
		}
		// The ingest says what the store holds, not what was answered:
		// a client resuming it continues after the last good chunk.
		st, err := f.client.Status(nsCtx(), &api.StatusRequest{Ref: "r"})
		if err != nil || st.Status.Offset != 3<<20 {
			t.Fatalf("status after the failure: %v, %v; the store holds %d bytes", st, err, 3<<20)
		}
	})
}

// A stream that does not ask for write-behind, as containerd's clients do
// not, has each WRITE answered once written, with the digest of all the
// data so far: their writer's Digest is the last answer's.
func TestWriteAnswersCarryDigest(t *testing.T) {
	f := newFixture(t)
	s, err := f.client.Write(nsCtx())
	if err != nil {
		t.Fatal(err)
	}
	ws := &writeStream{t, s}
	ws.do(&api.WriteContentRequest{Action: api.WriteAction_STAT, Ref: "r"})
	data := randomBytes(3*4096, 6)
	for off := 0; off < len(data); off += 4096 {
		resp := ws.do(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Offset: int64(off), Data: data[off : off+4096]})
		if want := digest.FromBytes(data[:off+4096]).String(); resp.Digest != want || resp.Offset != int64(off+4096) {
			t.Fatalf("write at %d answered %s at %d, want %s at %d", off, resp.Digest, resp.Offset, want, off+4096)
		}
	}
}
