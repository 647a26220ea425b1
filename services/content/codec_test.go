package content

import (
	"bytes"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	api "github.com/llitfkitfk/containerd/api/services/content/v1"
)

// countingPool is a buffer pool that counts what comes back to it.
type countingPool struct{ put atomic.Int32 }

func (p *countingPool) Get(n int) *[]byte { b := make([]byte, n); return &b }
func (p *countingPool) Put(*[]byte)       { p.put.Add(1) }

// split cuts b into buffers of size bytes (the last shorter), as gRPC's
// frames cut a message.
func split(b []byte, size int, pool mem.BufferPool) mem.BufferSlice {
	var s mem.BufferSlice
	for len(b) > 0 {
		n := min(size, len(b))
		p := append([]byte(nil), b[:n]...)
		s = append(s, mem.NewBuffer(&p, pool))
		b = b[n:]
	}
	return s
}

func encodedRequests(t *testing.T) map[string][]byte {
	data := randomBytes(5000, 1)
	full, err := proto.Marshal(&api.WriteContentRequest{
		Action: api.WriteAction_COMMIT, Ref: "ref/ü", Total: 5000, Expected: "sha256:abc",
		Offset: 12, Data: data, Labels: map[string]string{"a": "1", "b": "2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	twice := append([]byte(nil), full...)
	twice = protowire.AppendTag(twice, dataField, protowire.BytesType)
	twice = protowire.AppendBytes(twice, []byte("last one wins"))
	unknown := protowire.AppendTag(append([]byte(nil), full...), 99, protowire.Fixed64Type)
	unknown = protowire.AppendFixed64(unknown, 42)
	unknown = protowire.AppendTag(unknown, 98, protowire.Fixed32Type)
	unknown = protowire.AppendFixed32(unknown, 7)
	group := protowire.AppendTag(append([]byte(nil), full...), 97, protowire.StartGroupType)
	group = protowire.AppendTag(group, 1, protowire.VarintType)
	group = protowire.AppendVarint(group, 5)
	group = protowire.AppendTag(group, 97, protowire.EndGroupType)
	noData, _ := proto.Marshal(&api.WriteContentRequest{Action: api.WriteAction_STAT, Ref: "r"})
	badUTF8, _ := proto.Marshal(&api.WriteContentRequest{Data: []byte("x")})
	badUTF8 = protowire.AppendTag(badUTF8, 2, protowire.BytesType)
	badUTF8 = protowire.AppendBytes(badUTF8, []byte{0xff, 0xfe})
	return map[string][]byte{"full": full, "twice": twice, "unknown": unknown, "group": group, "noData": noData, "badUTF8": badUTF8}
}

// decode gives what proto.Unmarshal gives, wherever the message is cut
// into buffers, and fails where it fails (every prefix of each message).
func TestWriteCodecMatchesProto(t *testing.T) {
	for name, msg := range encodedRequests(t) {
		t.Run(name, func(t *testing.T) {
			for _, size := range []int{1, 3, 16, 1000, 16 << 10, len(msg) + 1} {
				for _, n := range prefixes(len(msg), size) {
					var want api.WriteContentRequest
					wantErr := proto.Unmarshal(msg[:n], &want)
					var got writeRequest
					gotErr := got.decode(split(msg[:n], size, mem.DefaultBufferPool()))
					if (gotErr == nil) != (wantErr == nil) {
						t.Fatalf("%d bytes in buffers of %d: error %v, proto.Unmarshal's %v", n, size, gotErr, wantErr)
					}
					if gotErr != nil {
						continue
					}
					pieces, held := got.takeData()
					got.Data = bytes.Join(pieces, nil)
					if len(got.Data) == 0 {
						got.Data = nil
					}
					if len(want.Data) == 0 {
						want.Data = nil
					}
					if !proto.Equal(got.WriteContentRequest, &want) {
						t.Fatalf("%d bytes in buffers of %d: decoded %v, want %v", n, size, got.WriteContentRequest, &want)
					}
					held.Free()
				}
			}
		})
	}
}

// prefixes are the lengths of the prefixes to try: all for short
// messages, else around the buffer boundaries and the ends.
func prefixes(n, size int) []int {
	if n <= 200 {
		var all []int
		for i := 0; i <= n; i++ {
			all = append(all, i)
		}
		return all
	}
	ps := []int{0, 1, 2, 5, 10, 20, 40, n - 20, n - 3, n - 1, n}
	for b := size; b < n && len(ps) < 100; b += size {
		ps = append(ps, b-1, b, b+1)
	}
	return ps
}

// The data stays in the buffers gRPC received it in: they go back to
// their pool when the request's data is freed, not when gRPC frees its
// own reference after decoding.
func TestWriteCodecHoldsBuffers(t *testing.T) {
	msg := encodedRequests(t)["full"]
	pool := &countingPool{}
	// gRPC pools buffers of more than 1 KiB only.
	data := split(msg, 2048, pool)
	pooled := 0
	for _, b := range data {
		if b.Len() > 1<<10 {
			pooled++
		}
	}
	var r writeRequest
	if err := r.decode(data); err != nil {
		t.Fatal(err)
	}
	data.Free() // as gRPC does once Unmarshal returns
	if n := pool.put.Load(); n != 0 {
		t.Fatalf("%d buffers back in the pool while the request holds its data", n)
	}
	if r.dataLen() != 5000 {
		t.Fatalf("data of %d bytes", r.dataLen())
	}
	r.free()
	if n := pool.put.Load(); int(n) != pooled {
		t.Fatalf("%d of %d buffers back after free", n, pooled)
	}
}
