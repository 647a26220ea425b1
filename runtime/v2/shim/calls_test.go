package shim

import (
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"
)

func frame(typ byte, payload string) []byte {
	b := make([]byte, frameHeaderLen+len(payload))
	binary.BigEndian.PutUint32(b, uint32(len(payload)))
	binary.BigEndian.PutUint32(b[4:], 1)
	b[8] = typ
	copy(b[frameHeaderLen:], payload)
	return b
}

// TestFrameScanner: frames are found however the stream is cut, empty
// payloads included.
func TestFrameScanner(t *testing.T) {
	var stream []byte
	stream = append(stream, frame(frameRequest, "hello")...)
	stream = append(stream, frame(frameResponse, "")...)
	stream = append(stream, frame(0x3, "some data")...)
	stream = append(stream, frame(frameResponse, "x")...)
	want := []byte{frameRequest, frameResponse, 0x3, frameResponse}
	for _, chunk := range []int{1, 3, 10, 11, len(stream)} {
		var s frameScanner
		var got []byte
		for p := stream; len(p) > 0; {
			n := min(chunk, len(p))
			s.scan(p[:n], func(typ byte) { got = append(got, typ) })
			p = p[n:]
		}
		if string(got) != string(want) {
			t.Errorf("chunks of %d: frames %v, want %v", chunk, got, want)
		}
	}
}

type passHandshaker struct{}

func (passHandshaker) Handshake(ctx context.Context, conn net.Conn) (net.Conn, any, error) {
	return conn, nil, nil
}

// holds reports whether ok comes to hold within 20ms.
func holds(tr *callTracker, ok func(owed, open int) bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	tr.waitUntil(ctx, ok)
	return ctx.Err() == nil
}

func quiet(tr *callTracker) bool {
	return holds(tr, func(owed, _ int) bool { return owed == 0 })
}

func allClosed(tr *callTracker) bool {
	return holds(tr, func(_, open int) bool { return open == 0 })
}

// TestCallTrackerWaitsForAnswers: the shim may stop serving once every
// request read has had its response written, or its connection closed.
func TestCallTrackerWaitsForAnswers(t *testing.T) {
	var tr callTracker
	server, client := net.Pipe()
	defer client.Close()
	conn, _, _ := tr.handshaker(passHandshaker{}).Handshake(context.Background(), server)
	go client.Write(frame(frameRequest, "call"))
	buf := make([]byte, 64)
	if n, err := conn.Read(buf); err != nil || n == 0 {
		t.Fatalf("read: %d, %v", n, err)
	}
	if quiet(&tr) {
		t.Fatal("quiet with a call unanswered")
	}
	go client.Read(buf)
	if _, err := conn.Write(frame(frameResponse, "answer")); err != nil {
		t.Fatal(err)
	}
	if !quiet(&tr) {
		t.Fatal("not quiet once the call was answered")
	}
	if allClosed(&tr) {
		t.Fatal("all closed with a connection open")
	}

	go client.Write(frame(frameRequest, "call"))
	conn.Read(buf)
	if quiet(&tr) {
		t.Fatal("quiet with a call unanswered")
	}
	conn.Close()
	if !quiet(&tr) {
		t.Fatal("not quiet once the connection owing an answer was closed")
	}
	if !allClosed(&tr) {
		t.Fatal("not all closed once the one connection was")
	}
}
