package content

import (
	"crypto/sha256"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	api "github.com/llitfkitfk/containerd/api/services/content/v1"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/content/proxy"
)

// BenchmarkWrite streams a blob through Write over a unix socket the way
// containerd's client does (one chunk, wait for its answer, next chunk)
// into a store that only hashes, with write-behind off (containerd's way)
// and on. BenchmarkSHA256 is the bound.
func BenchmarkWrite(b *testing.B) {
	const size = 64 << 20
	data := randomBytes(size, 7)
	for _, chunk := range []int{64 << 10, 1 << 20} {
		for _, depth := range []int{0, 1, 2} {
			b.Run(fmt.Sprintf("chunk=%dKiB/writeBehind=%d", chunk>>10, depth), func(b *testing.B) {
				old := writeBehind
				writeBehind = depth
				defer func() { writeBehind = old }()
				store := newFakeStore()
				store.discard = true
				client := serveUnix(b, newService(store))
				b.SetBytes(size)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := benchWrite(client, fmt.Sprintf("ref-%d", i), data, chunk); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkWriteLocal is BenchmarkWrite into the local store on disk (page
// cache), which hashes and writes each chunk in parallel.
func BenchmarkWriteLocal(b *testing.B) {
	const size = 64 << 20
	data := randomBytes(size, 9)
	eachWriteBehind(b, func(b *testing.B) {
		store, err := local.NewStore(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		client := serveUnix(b, newService(store))
		b.SetBytes(size)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			data[0]++ // a new blob every time
			b.StartTimer()
			if err := benchWrite(client, fmt.Sprintf("ref-%d", i), data, 1<<20); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWriteProxy is BenchmarkWriteLocal through the Go client's
// writer (content/proxy), which pipelines its WRITEs, with a commit that
// syncs: what a client of the daemon waits for.
func BenchmarkWriteProxy(b *testing.B) {
	const size = 64 << 20
	data := randomBytes(size, 11)
	eachWriteBehind(b, func(b *testing.B) {
		store, err := local.NewStore(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		cs := proxy.NewContentStore(serveUnix(b, newService(store)))
		b.SetBytes(size)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			data[0]++ // a new blob every time
			desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: size}
			b.StartTimer()
			w, err := cs.Writer(nsCtx(), content.WithRef(fmt.Sprint("ref-", i)), content.WithDescriptor(desc))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := w.Write(data); err != nil {
				b.Fatal(err)
			}
			if err := w.Commit(nsCtx(), size, desc.Digest); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWriteOverlap stands in for a machine with a core to spare: the
// store's write takes 1ms (about what hashing 1 MiB does) without using
// the CPU, so what write-behind overlaps shows even where this benchmark
// gets a single core.
func BenchmarkWriteOverlap(b *testing.B) {
	const size = 64 << 20
	data := randomBytes(size, 10)
	eachWriteBehind(b, func(b *testing.B) {
		store := newFakeStore()
		store.discard = true
		store.delay = time.Millisecond
		client := serveUnix(b, newService(store))
		b.SetBytes(size)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := benchWrite(client, fmt.Sprintf("ref-%d", i), data, 1<<20); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSHA256(b *testing.B) {
	data := randomBytes(1<<20, 8)
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		sha256.Sum256(data)
	}
}

// benchWrite asks for write-behind, which the benchmark turns on or off.
func benchWrite(client api.ContentClient, ref string, data []byte, chunk int) error {
	s, err := client.Write(metadata.AppendToOutgoingContext(nsCtx(), content.WriteBehindHeader, "1"))
	if err != nil {
		return err
	}
	for off := 0; off < len(data); off += chunk {
		req := &api.WriteContentRequest{Action: api.WriteAction_WRITE, Offset: int64(off), Data: data[off:min(off+chunk, len(data))]}
		if off == 0 {
			req.Ref = ref
		}
		if err := s.Send(req); err != nil {
			return err
		}
		if _, err := s.Recv(); err != nil {
			return err
		}
	}
	if err := s.Send(&api.WriteContentRequest{Action: api.WriteAction_COMMIT, Offset: int64(len(data)), Total: int64(len(data))}); err != nil {
		return err
	}
	_, err = s.Recv()
	s.CloseSend()
	return err
}

func serveUnix(b *testing.B, svc *service) api.ContentClient {
	sock := filepath.Join(b.TempDir(), "c.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(16 << 20))
	svc.Register(srv)
	go srv.Serve(lis)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		conn.Close()
		srv.Stop()
	})
	return api.NewContentClient(conn)
}

// eachWriteBehind runs bench as a sub-benchmark with write-behind off and
// with two chunks in flight.
func eachWriteBehind(b *testing.B, bench func(b *testing.B)) {
	for _, depth := range []int{0, 2} {
		b.Run(fmt.Sprintf("writeBehind=%d", depth), func(b *testing.B) {
			old := writeBehind
			writeBehind = depth
			defer func() { writeBehind = old }()
			bench(b)
		})
	}
}
