package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"

	contentapi "github.com/llitfkitfk/containerd/api/services/content/v1"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
	_ "github.com/llitfkitfk/containerd/services/content" // the Content gRPC service
)

// counting wraps the generated client to count Read streams and WRITE
// messages, which say whether the proxy batches as it should.
type counting struct {
	contentapi.ContentClient
	mu     sync.Mutex
	reads  int
	writes int
}

func (c *counting) Read(ctx context.Context, req *contentapi.ReadContentRequest, opts ...grpc.CallOption) (contentapi.Content_ReadClient, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.ContentClient.Read(ctx, req, opts...)
}

func (c *counting) Write(ctx context.Context, opts ...grpc.CallOption) (contentapi.Content_WriteClient, error) {
	s, err := c.ContentClient.Write(ctx, opts...)
	return &countingWrite{s, c}, err
}

type countingWrite struct {
	contentapi.Content_WriteClient
	c *counting
}

func (w *countingWrite) Send(req *contentapi.WriteContentRequest) error {
	if req.Action == contentapi.WriteAction_WRITE {
		w.c.mu.Lock()
		w.c.writes++
		w.c.mu.Unlock()
	}
	return w.Content_WriteClient.Send(req)
}

// newProxy serves the daemon's Content service over a local store in
// process, and returns the proxy to it with a namespaced context.
func newProxy(t *testing.T) (content.Store, *counting, context.Context) {
	t.Helper()
	dir := t.TempDir()
	backing, err := local.NewLabeledStore(dir, testutil.NewMemLabels())
	if err != nil {
		t.Fatal(err)
	}
	set := plugin.NewPluginSet()
	svc := &plugin.Registration{Type: plugin.ServicePlugin, ID: services.ContentService,
		InitFn: func(*plugin.InitContext) (interface{}, error) { return backing, nil }}
	if err := set.Add(svc.Init(plugin.NewContext(context.Background(), svc, set, dir, dir))); err != nil {
		t.Fatal(err)
	}
	var reg *plugin.Registration
	for _, r := range plugin.Registrations() {
		if r.Type == plugin.GRPCPlugin && r.ID == "content" {
			reg = r
		}
	}
	inst, err := reg.Init(plugin.NewContext(context.Background(), reg, set, dir, dir)).Instance()
	if err != nil {
		t.Fatal(err)
	}
	lis := testutil.Listen(t, inst.(interface{ Register(*grpc.Server) error }).Register)
	conn := testutil.Dial(t, lis, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))
	cc := &counting{ContentClient: contentapi.NewContentClient(conn)}
	return NewContentStore(cc), cc, namespaces.WithNamespace(context.Background(), "test")
}

func randomData(n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(int64(n))).Read(b)
	return b
}

func TestWriterBatchesAndResumes(t *testing.T) {
	cs, cc, ctx := newProxy(t)
	data := randomData(3<<20 + 7)
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}

	w, err := cs.Writer(ctx, content.WithRef("r"), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	// Byte-sized writes are gathered: a MiB and a bit is two messages.
	for _, b := range data[:1<<20+1] {
		if _, err := w.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := w.Status(); err != nil || st.Offset != 1<<20+1 {
		t.Fatalf("status: %+v, %v", st, err)
	}
	if cc.writes != 2 {
		t.Fatalf("%d WRITE messages for 1 MiB + 1 byte of small writes", cc.writes)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Another writer resumes at once: Close waited for the lock to go.
	w, err = cs.Writer(ctx, content.WithRef("r"), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	st, err := w.Status()
	if err != nil || st.Offset != 1<<20+1 {
		t.Fatalf("resumed at %+v, %v", st, err)
	}
	// One large write goes out without gathering, in 1 MiB chunks; the
	// 6 bytes left over wait for more.
	cc.writes = 0
	if n, err := w.Write(data[st.Offset:]); err != nil || n != len(data)-int(st.Offset) {
		t.Fatalf("write: %d, %v", n, err)
	}
	if cc.writes != 2 {
		t.Fatalf("%d WRITE messages for a 2 MiB write", cc.writes)
	}
	if w.Digest() != desc.Digest {
		t.Fatalf("digest %s", w.Digest())
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
	if got, err := content.ReadBlob(ctx, cs, desc); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	// Any further use of the committed writer fails cleanly.
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("write after commit")
	}
}

func TestWriterTruncateAndCommitChecks(t *testing.T) {
	cs, _, ctx := newProxy(t)
	w, err := cs.Writer(ctx, content.WithRef("t"))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("wrong start"))
	if err := w.Truncate(3); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("truncate to 3: %v", err)
	}
	if err := w.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if st, err := w.Status(); err != nil || st.Offset != 0 {
		t.Fatalf("after truncate: %+v, %v", st, err)
	}
	w.Write([]byte("right"))
	if err := w.Commit(ctx, 5, digest.FromString("other")); err == nil {
		t.Fatal("commit with a wrong digest succeeded")
	}

	w, err = cs.Writer(ctx, content.WithRef("t"))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := w.Status(); st.Offset != 5 {
		t.Fatalf("ingest after failed commit at %d", st.Offset)
	}
	if err := w.Commit(ctx, 5, digest.FromString("right"), content.WithLabels(map[string]string{"a": "b"})); err != nil {
		t.Fatal(err)
	}
	if info, err := cs.Info(ctx, digest.FromString("right")); err != nil || info.Labels["a"] != "b" {
		t.Fatalf("info: %+v, %v", info, err)
	}
	// The same blob again is AlreadyExists, at Writer or at Commit.
	w, err = cs.Writer(ctx, content.WithRef("t2"))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("right"))
	if err := w.Commit(ctx, 5, digest.FromString("right")); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("commit of an existing blob: %v", err)
	}
	if _, err := cs.Writer(ctx, content.WithRef("t3"), content.WithDescriptor(ocispec.Descriptor{Digest: digest.FromString("right"), Size: 5})); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("writer of an existing blob: %v", err)
	}
	if _, err := cs.Writer(ctx); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("writer without a ref: %v", err)
	}
}

func TestReaderAt(t *testing.T) {
	cs, cc, ctx := newProxy(t)
	data := randomData(2*readAhead + 3)
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	if err := content.WriteBlob(ctx, cs, "blob", bytes.NewReader(data), desc); err != nil {
		t.Fatal(err)
	}
	ra, err := cs.ReaderAt(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()

	// Reading it all in small pieces takes a stream per readAhead.
	cc.reads = 0
	var got bytes.Buffer
	if _, err := io.CopyBuffer(&got, io.NewSectionReader(ra, 0, ra.Size()), make([]byte, 32<<10)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("sequential read differs")
	}
	if want := (len(data) + readAhead - 1) / readAhead; cc.reads != want {
		t.Fatalf("%d streams for a sequential read, want %d", cc.reads, want)
	}

	// Sequential reads that straddle the end of a stream.
	cc.reads = 0
	big := make([]byte, readAhead*3/4)
	for off := int64(0); off < desc.Size; {
		n, err := ra.ReadAt(big, off)
		if !bytes.Equal(big[:n], data[off:off+int64(n)]) {
			t.Fatalf("read at %d differs", off)
		}
		off += int64(n)
		if err != nil {
			if !errors.Is(err, io.EOF) || off != desc.Size {
				t.Fatalf("read at %d: %v", off, err)
			}
			break
		}
	}
	if cc.reads > 4 {
		t.Fatalf("%d streams for %d sequential reads", cc.reads, (len(data)+len(big)-1)/len(big))
	}

	// Reads at the end, past it and before the start.
	p := make([]byte, 10)
	if n, err := ra.ReadAt(p, desc.Size-4); n != 4 || !errors.Is(err, io.EOF) || !bytes.Equal(p[:4], data[len(data)-4:]) {
		t.Fatalf("read at the end: %d, %v", n, err)
	}
	if n, err := ra.ReadAt(p, desc.Size); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read past the end: %d, %v", n, err)
	}
	if _, err := ra.ReadAt(p, -1); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("read at -1: %v", err)
	}

	// Concurrent reads anywhere each get their own bytes.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(g)))
			buf := make([]byte, 64<<10)
			for i := 0; i < 10; i++ {
				off := r.Int63n(desc.Size)
				n, err := ra.ReadAt(buf, off)
				if err != nil && !errors.Is(err, io.EOF) {
					errs <- err
					return
				}
				if !bytes.Equal(buf[:n], data[off:off+int64(n)]) || (n < len(buf) && off+int64(n) != desc.Size) {
					errs <- errors.New("concurrent read returned the wrong bytes")
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	if err := cs.Delete(ctx, desc.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.ReaderAt(ctx, desc); !errdefs.IsNotFound(err) {
		t.Fatalf("reader of a deleted blob: %v", err)
	}
}
