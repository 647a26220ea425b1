package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/metadata"

	contentapi "github.com/llitfkitfk/containerd/api/services/content/v1"
	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/content"
)

// blobSize is the blob the content workload writes: large enough that
// the stream's set-up is noise beside hashing and writing.
const blobSize = 256 << 20

var contentWriteWorkload = &workload{
	name: "content",
	about: "one fresh 256 MiB blob written through the Go client's content writer (client.ContentStore, content.WriteBlob, " +
		"as a pull writes a layer) and committed, then read back whole through the Read stream; " +
		"goal: write at least 700 MB/s (668 MiB/s) and 2.5x containerd 2.x's (ours/2.x at most 0.40)",
	params: func(o options) string {
		return fmt.Sprintf("median of %d rounds", o.rounds)
	},
	measure: measureContentWrite,
}

// benchNamespace is where the workloads keep what they make.
func benchNamespace(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "containerd-namespace", benchNamespaceName)
}

const benchNamespaceName = "bench"

var blobSeq uint64

// freshBlob returns blobSize bytes no daemon has seen, and their digest.
// The bytes differ in every 8-byte word, so no store can dedupe them.
func freshBlob() ([]byte, string) {
	blobSeq++
	b := make([]byte, blobSize)
	seed := uint64(time.Now().UnixNano()) ^ blobSeq<<48
	for i := 0; i+8 <= len(b); i += 8 {
		seed = seed*6364136223846793005 + 1442695040888963407
		binary.LittleEndian.PutUint64(b[i:], seed)
	}
	return b, fmt.Sprintf("sha256:%x", sha256.Sum256(b))
}

func measureContentWrite(ctx context.Context, b *bench, d *daemon) ([]metric, error) {
	data, dgst := freshBlob()
	c, err := client.New(d.address, client.WithDefaultNamespace(benchNamespaceName))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.Digest(dgst), Size: int64(len(data))}
	ref := "bench-" + dgst[len(dgst)-16:]

	start := time.Now()
	if err := content.WriteBlob(ctx, c.ContentStore(), ref, bytes.NewReader(data), desc); err != nil {
		return nil, err
	}
	elapsed := time.Since(start)

	raw := contentapi.NewContentClient(c.Conn())
	ctx = benchNamespace(ctx)
	readTime, err := readBlob(ctx, raw, dgst, int64(len(data)))
	if err != nil {
		return nil, err
	}
	// Leave the daemon as it was, so later rounds measure the same thing.
	if _, err := raw.Delete(ctx, &contentapi.DeleteContentRequest{Digest: dgst}); err != nil {
		return nil, fmt.Errorf("delete %s: %w", dgst, err)
	}
	return []metric{
		{name: "write", unit: bytesPerSec, value: float64(len(data)) / elapsed.Seconds()},
		duration("time", elapsed),
		{name: "read", unit: bytesPerSec, value: float64(len(data)) / readTime.Seconds()},
	}, nil
}

// readBlob reads the blob dgst, of size bytes, through one Read stream and
// returns how long it took.
func readBlob(ctx context.Context, client contentapi.ContentClient, dgst string, size int64) (time.Duration, error) {
	start := time.Now()
	stream, err := client.Read(ctx, &contentapi.ReadContentRequest{Digest: dgst})
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", dgst, err)
	}
	var n int64
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("read %s at %d: %w", dgst, n, err)
		}
		n += int64(len(resp.Data))
	}
	if n != size {
		return 0, fmt.Errorf("read %d bytes of %s, want %d", n, dgst, size)
	}
	return time.Since(start), nil
}
