package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	contentapi "github.com/llitfkitfk/containerd/api/services/content/v1"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/namespaces"
)

// scriptedDaemon is a Content service whose Write stream keeps the data in
// memory and answers as a daemon may: late (holding up to hold answers
// until a message that is not a WRITE comes, or too many are held, or
// the data reaches flushAt, where the test's writer waits for them), with
// a wrong offset, or failing at some WRITE.
type scriptedDaemon struct {
	contentapi.UnimplementedContentServer
	hold      int   // answers held back; 0 answers each message at once
	flushAt   int64 // answer all once the data reaches this size
	delay     time.Duration
	failAt    int // fail the failAt-th WRITE (1-based); 0 never
	skewAt    int // answer the skewAt-th WRITE one byte short; 0 never
	mu        sync.Mutex
	data      []byte
	maxHeld   int  // the most WRITE answers held at once
	behind    bool // the stream asked for write-behind
	committed bool
}

func (d *scriptedDaemon) Write(stream contentapi.Content_WriteServer) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	d.mu.Lock()
	d.behind = len(md.Get(content.WriteBehindHeader)) > 0
	d.mu.Unlock()
	var held []*contentapi.WriteContentResponse
	flush := func() error {
		for _, r := range held {
			time.Sleep(d.delay)
			if err := stream.Send(r); err != nil {
				return err
			}
		}
		held = held[:0]
		return nil
	}
	writes := 0
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return flush()
		}
		if err != nil {
			return err
		}
		d.mu.Lock()
		resp := &contentapi.WriteContentResponse{Action: req.Action}
		switch req.Action {
		case contentapi.WriteAction_WRITE, contentapi.WriteAction_COMMIT:
			if req.Action == contentapi.WriteAction_WRITE {
				writes++
				if writes == d.failAt {
					d.mu.Unlock()
					return status.Error(codes.ResourceExhausted, "disk full")
				}
			}
			if req.Offset != int64(len(d.data)) {
				d.mu.Unlock()
				return status.Errorf(codes.FailedPrecondition, "write at %d, ingest at %d", req.Offset, len(d.data))
			}
			d.data = append(d.data, req.Data...)
			resp.Offset = int64(len(d.data))
			if writes == d.skewAt && req.Action == contentapi.WriteAction_WRITE {
				resp.Offset--
			}
			if req.Action == contentapi.WriteAction_COMMIT {
				d.committed = true
				resp.Digest = digest.FromBytes(d.data).String()
			}
		default:
			resp.Offset = int64(len(d.data))
			resp.Digest = digest.FromBytes(d.data).String()
		}
		d.mu.Unlock()
		held = append(held, resp)
		if req.Action == contentapi.WriteAction_WRITE {
			d.maxHeld = max(d.maxHeld, len(held))
			if len(held) < d.hold && (d.flushAt == 0 || int64(len(d.data)) < d.flushAt) {
				continue
			}
		}
		if err := flush(); err != nil {
			return err
		}
		if req.Action == contentapi.WriteAction_COMMIT {
			return nil
		}
	}
}

func serveScripted(t *testing.T, d *scriptedDaemon) (content.Store, context.Context) {
	t.Helper()
	lis := testutil.Listen(t, func(s *grpc.Server) error {
		contentapi.RegisterContentServer(s, d)
		return nil
	})
	conn := testutil.Dial(t, lis, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))
	// A writer that waited for each answer would wait forever on a
	// daemon that holds them: the deadline turns that into a failure.
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "test"), time.Minute)
	t.Cleanup(cancel)
	return NewContentStore(contentapi.NewContentClient(conn)), ctx
}

// A Write or a ReadFrom sends its WRITEs without waiting for their
// answers, and copes with a daemon that answers late (when maxInFlight are
// held, when the call has sent all it will, before a STAT or COMMIT's
// answer) and slowly. A writer that waited for each answer would wait
// forever, and the test's deadline fail it.
func TestWriterPipelinesWrites(t *testing.T) {
	for _, how := range []string{"Write", "ReadFrom"} {
		t.Run(how, func(t *testing.T) {
			testWriterPipelines(t, how)
		})
	}
}

func testWriterPipelines(t *testing.T, how string) {
	// The call sends 12 chunks of 1 MiB; the last 5 bytes wait for more.
	d := &scriptedDaemon{hold: maxInFlight, flushAt: 12 << 20, delay: time.Millisecond}
	cs, ctx := serveScripted(t, d)
	data := randomData(12<<20 + 5)
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	w, err := cs.Writer(ctx, content.WithRef("r"), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	if how == "Write" {
		_, err = w.Write(data)
	} else {
		_, err = io.Copy(w, struct{ io.Reader }{bytes.NewReader(data)})
	}
	if err != nil {
		t.Fatal(err)
	}
	if st, err := w.Status(); err != nil || st.Offset != desc.Size {
		t.Fatalf("status: %+v, %v", st, err)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !bytes.Equal(d.data, data) || !d.committed {
		t.Fatalf("daemon holds %d bytes (committed %v), want the %d written", len(d.data), d.committed, len(data))
	}
	if d.maxHeld != maxInFlight {
		t.Fatalf("at most %d WRITEs were sent before an answer, want %d", d.maxHeld, maxInFlight)
	}
	if !d.behind {
		t.Fatal("the writer did not ask for write-behind")
	}
}

// A daemon failing a write while more are on the way: the failure is the
// error of a later Write or of the Commit, and of every call after it,
// whatever was still unanswered.
func TestWriterReportsFailedWrite(t *testing.T) {
	for _, failAt := range []int{1, 3, 10} {
		t.Run(fmt.Sprint("failAt=", failAt), func(t *testing.T) {
			d := &scriptedDaemon{failAt: failAt, hold: 2, flushAt: 12 << 20}
			cs, ctx := serveScripted(t, d)
			data := randomData(12 << 20)
			w, err := cs.Writer(ctx, content.WithRef("r"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = w.Write(data)
			if err == nil {
				err = w.Commit(ctx, int64(len(data)), digest.FromBytes(data))
			}
			if status.Code(errdefs.ToGRPC(err)) != codes.ResourceExhausted {
				t.Fatalf("error %v, want the daemon's ResourceExhausted", err)
			}
			if _, err2 := w.Write([]byte("x")); err2 == nil {
				t.Fatal("write after the failure succeeded")
			}
			if err2 := w.Commit(ctx, 0, ""); err2 == nil {
				t.Fatal("commit after the failure succeeded")
			}
			w.Close()
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.committed {
				t.Fatal("committed after a failed write")
			}
		})
	}
}

// An answer at another offset than the writer's data leaves is refused.
func TestWriterChecksAnswers(t *testing.T) {
	d := &scriptedDaemon{skewAt: 2, hold: 3, flushAt: 4 << 20}
	cs, ctx := serveScripted(t, d)
	w, err := cs.Writer(ctx, content.WithRef("r"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Write(randomData(4 << 20))
	if err == nil {
		_, err = w.Status()
	}
	if !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("error %v, want FailedPrecondition for the short answer", err)
	}
}

// A client that dies after a Write returned leaves what that Write sent
// in the ingest (the daemon answered it), and a new writer resumes there
// and completes the right blob.
func TestWriterResumesAfterCut(t *testing.T) {
	cs, _, ctx := newProxy(t)
	data := randomData(9<<20 + 3)
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	cut, cancel := context.WithCancel(ctx)
	w, err := cs.Writer(cut, content.WithRef("r"), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[:6<<20]); err != nil {
		t.Fatal(err)
	}
	cancel() // no Close: as if the client were killed

	// The daemon lets go of the ref on its own time.
	deadline := time.Now().Add(10 * time.Second)
	for {
		w, err = cs.Writer(ctx, content.WithRef("r"), content.WithDescriptor(desc))
		if err == nil || time.Now().After(deadline) || !errdefs.IsUnavailable(err) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	st, err := w.Status()
	if err != nil || st.Offset != 6<<20 {
		t.Fatalf("resumed at %+v, %v, want at the %d bytes written", st, err, 6<<20)
	}
	if _, err := w.Write(data[st.Offset:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatalf("commit after resuming at %d: %v", st.Offset, err)
	}
	if got, err := content.ReadBlob(ctx, cs, desc); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
}
