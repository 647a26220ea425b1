package content

import (
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	api "github.com/llitfkitfk/containerd/api/services/content/v1"
)

// A WRITE's data would be copied twice between gRPC and the file: gRPC's
// proto codec gathers the message's frames (16 KiB each, the HTTP/2
// default) into one buffer, and proto.Unmarshal copies the data field out
// of it into a fresh slice (the protobuf runtime never aliases bytes
// fields). The second copy was the costly one: 256 MiB of newly allocated
// memory per 256 MiB blob, which the garbage collector then returns, and
// which this machine's VM pays a page fault for on every reuse. In a
// profile of the daemon receiving a 256 MiB blob it took 108 ms of CPU,
// the gathering 25 ms more, against 190 ms for hashing it.
//
// So Write streams decode their requests with writeCodec, which leaves
// the data where gRPC read it: the request holds a reference to the
// frames' buffers and the pieces of them that are the data, which the
// store writes with one writev (content.VectorWriter) and hashes piece by
// piece. The buffers go back to gRPC's pool once the chunk is in the file.
//
// gRPC picks a codec by the call's content subtype and has no per-method
// choice, so writeCodec replaces the registered "proto" codec and hands
// every other message to it unchanged; it is the same wire format.
func init() {
	encoding.RegisterCodecV2(writeCodec{encoding.GetCodecV2("proto")})
}

type writeCodec struct {
	encoding.CodecV2 // gRPC's proto codec
}

func (c writeCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*writeRequest); ok {
		return r.decode(data)
	}
	return c.CodecV2.Unmarshal(data, v)
}

// writeRequest is a WriteContentRequest whose data may be left in gRPC's
// buffers: pieces, in held. As a proto.Message (through the embedded
// pointer) it still decodes with any other codec, into Data.
type writeRequest struct {
	*api.WriteContentRequest
	pieces [][]byte
	held   mem.BufferSlice // referenced while pieces are in use
}

// The field number of WriteContentRequest's data, as in content.proto.
const dataField protowire.Number = 6

// decode unmarshals the message in data. Every field but data is handed
// to proto.Unmarshal, so that they are checked as always (UTF-8 strings,
// the labels map, unknown fields); data, which proto3 lets occur more
// than once with the last one winning, is left in data's buffers. A
// message with groups (no field of this one is a group) is decoded the
// plain way.
func (r *writeRequest) decode(data mem.BufferSlice) error {
	if r.WriteContentRequest == nil {
		r.WriteContentRequest = &api.WriteContentRequest{}
	}
	r.pieces, r.held = nil, nil
	c := cursor{left: data.Len()}
	for _, b := range data {
		c.bufs = append(c.bufs, b.ReadOnlyData())
	}
	var rest, raw []byte
	var pieces [][]byte
	for c.left > 0 {
		var tag uint64
		var err error
		if tag, raw, err = c.varint(raw[:0]); err != nil {
			return fmt.Errorf("write request: %w", err)
		}
		num, typ := protowire.DecodeTag(tag)
		if num < protowire.MinValidNumber {
			return errors.New("write request: invalid field number")
		}
		switch typ {
		case protowire.VarintType:
			if _, raw, err = c.varint(raw); err != nil {
				return fmt.Errorf("write request: field %d: %w", num, err)
			}
		case protowire.Fixed32Type, protowire.Fixed64Type:
			n := 4
			if typ == protowire.Fixed64Type {
				n = 8
			}
			if c.left < n {
				return fmt.Errorf("write request: field %d: %w", num, io.ErrUnexpectedEOF)
			}
			for _, p := range c.take(n) {
				raw = append(raw, p...)
			}
		case protowire.BytesType:
			var n uint64
			if n, raw, err = c.varint(raw); err != nil {
				return fmt.Errorf("write request: field %d: %w", num, err)
			}
			if n > uint64(c.left) {
				return fmt.Errorf("write request: field %d: %w", num, io.ErrUnexpectedEOF)
			}
			value := c.take(int(n))
			if num == dataField {
				pieces = value
				continue
			}
			for _, p := range value {
				raw = append(raw, p...)
			}
		default:
			return r.decodeCopy(data)
		}
		rest = append(rest, raw...)
	}
	if err := proto.Unmarshal(rest, r.WriteContentRequest); err != nil {
		return err
	}
	if len(pieces) > 0 {
		data.Ref()
		r.pieces, r.held = pieces, data
	}
	return nil
}

// decodeCopy is gRPC's own decoding, which copies the data.
func (r *writeRequest) decodeCopy(data mem.BufferSlice) error {
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), r.WriteContentRequest)
}

// dataLen is the length of the request's data.
func (r *writeRequest) dataLen() int64 {
	if r.pieces == nil {
		return int64(len(r.Data))
	}
	var n int64
	for _, p := range r.pieces {
		n += int64(len(p))
	}
	return n
}

// takeData returns the request's data and the buffers it is in, which
// the caller must free once done with the data.
func (r *writeRequest) takeData() ([][]byte, mem.BufferSlice) {
	pieces, held := r.pieces, r.held
	if pieces == nil && len(r.Data) > 0 {
		pieces = [][]byte{r.Data}
	}
	r.pieces, r.held, r.Data = nil, nil, nil
	return pieces, held
}

// recv receives the stream's next request into r; the data buffers of
// the last one, unless taken, go back first.
func (r *writeRequest) recv(stream api.Content_WriteServer) error {
	r.free()
	return stream.RecvMsg(r)
}

// free gives back the data buffers, unless taken.
func (r *writeRequest) free() {
	_, held := r.takeData()
	held.Free()
}

// cursor reads a message held in several buffers.
type cursor struct {
	bufs [][]byte // what is left of each buffer
	left int      // bytes left in all
}

func (c *cursor) readByte() byte {
	for len(c.bufs[0]) == 0 {
		c.bufs = c.bufs[1:]
	}
	b := c.bufs[0][0]
	c.bufs[0] = c.bufs[0][1:]
	c.left--
	return b
}

// varint reads a varint, appending its bytes to raw.
func (c *cursor) varint(raw []byte) (uint64, []byte, error) {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if c.left == 0 {
			return 0, raw, io.ErrUnexpectedEOF
		}
		b := c.readByte()
		raw = append(raw, b)
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return v, raw, nil
		}
	}
	return 0, raw, errors.New("varint overflows 64 bits")
}

// take returns the next n bytes, at most left, as pieces of the buffers.
func (c *cursor) take(n int) [][]byte {
	var pieces [][]byte
	c.left -= n
	for n > 0 {
		p := c.bufs[0]
		if len(p) > n {
			p = p[:n]
		}
		if len(p) > 0 {
			pieces = append(pieces, p)
		}
		c.bufs[0] = c.bufs[0][len(p):]
		if len(c.bufs[0]) == 0 {
			c.bufs = c.bufs[1:]
		}
		n -= len(p)
	}
	return pieces
}
