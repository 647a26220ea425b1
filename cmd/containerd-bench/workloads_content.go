package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/metadata"

	contentapi "github.com/llitfkitfk/containerd/api/services/content/v1"
)

// blobSize is the blob the content workload writes: large enough that
// the stream's set-up is noise beside hashing and writing.
const (
	blobSize  = 256 << 20
	chunkSize = 1 << 20 // what containerd's own client sends per message
)

var contentWriteWorkload = &workload{
	name:  "content",
	about: "one fresh 256 MiB blob written through the Content service's Write stream in 1 MiB chunks, then committed, then read back whole through its Read stream",
	params: func(o options) string {
		return fmt.Sprintf("median of %d rounds", o.rounds)
	},
	measure: measureContentWrite,
}

// benchNamespace is where the workloads keep what they make.
func benchNamespace(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "containerd-namespace", "bench")
}

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
	conn, err := d.dial()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx = benchNamespace(ctx)
	client := contentapi.NewContentClient(conn)

	start := time.Now()
	stream, err := client.Write(ctx)
	if err != nil {
		return nil, fmt.Errorf("open write stream: %w", err)
	}
	ref := "bench-" + dgst[len(dgst)-16:]
	for off := 0; off < len(data); off += chunkSize {
		req := &contentapi.WriteContentRequest{
			Action: contentapi.WriteAction_WRITE,
			Ref:    ref,
			Offset: int64(off),
			Data:   data[off:min(off+chunkSize, len(data))],
		}
		if off == 0 {
			req.Total, req.Expected = int64(len(data)), dgst
		}
		if err := stream.Send(req); err != nil {
			return nil, fmt.Errorf("write at %d: %w", off, err)
		}
		if _, err := stream.Recv(); err != nil {
			return nil, fmt.Errorf("write at %d: %w", off, err)
		}
	}
	if err := stream.Send(&contentapi.WriteContentRequest{
		Action: contentapi.WriteAction_COMMIT, Ref: ref,
		Offset: int64(len(data)), Total: int64(len(data)), Expected: dgst,
	}); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	elapsed := time.Since(start)
	stream.CloseSend()
	if resp.Digest != dgst {
		return nil, fmt.Errorf("committed %s, want %s", resp.Digest, dgst)
	}
	readTime, err := readBlob(ctx, client, dgst, int64(len(data)))
	if err != nil {
		return nil, err
	}
	// Leave the daemon as it was, so later rounds measure the same thing.
	if _, err := client.Delete(ctx, &contentapi.DeleteContentRequest{Digest: dgst}); err != nil {
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
