package streaming

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	transfertypes "github.com/llitfkitfk/containerd/api/types/transfer"
	"github.com/llitfkitfk/containerd/streaming"
)

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func grant(t *testing.T, s streaming.Stream, n int32) {
	t.Helper()
	a, err := streaming.MarshalAny(&transfertypes.WindowUpdate{Update: n})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(a); err != nil {
		t.Fatal(err)
	}
}

func sendData(t *testing.T, s streaming.Stream, b []byte) {
	t.Helper()
	a, err := streaming.MarshalAny(&transfertypes.Data{Data: b})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(a); err != nil {
		t.Fatal(err)
	}
}

// A large transfer arrives whole and in order, through odd-sized writes and
// reads.
func TestLargeTransfer(t *testing.T) {
	ctx := context.Background()
	want := randomBytes(t, 5<<20+123)
	a, b := streaming.Pipe()
	w := NewWriter(ctx, a)
	errc := make(chan error, 1)
	go func() {
		defer w.Close()
		for p := want; len(p) > 0; {
			n := min(len(p), 70001)
			if _, err := w.Write(p[:n]); err != nil {
				errc <- err
				return
			}
			p = p[n:]
		}
		errc <- nil
	}()
	r := NewReader(ctx, b)
	defer r.Close()
	var got bytes.Buffer
	buf := make([]byte, 4093)
	if _, err := io.CopyBuffer(&got, r, buf); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("received %d bytes, not the %d sent", got.Len(), len(want))
	}
}

// SendStream, the client's side of an import, ends the bytes at the end of
// its reader.
func TestSendStream(t *testing.T) {
	ctx := context.Background()
	want := randomBytes(t, 300<<10)
	a, b := streaming.Pipe()
	SendStream(ctx, bytes.NewReader(want), a)
	got, err := io.ReadAll(NewReader(ctx, b))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("received %d bytes, not the %d sent", len(got), len(want))
	}
}

// The writer sends no more than it was granted: a peer that stops
// granting (stops reading) gets exactly the window, and the blocked Write
// fails when that peer goes away, reporting what it wrote.
func TestWriterRespectsWindow(t *testing.T) {
	ctx := context.Background()
	a, peer := streaming.Pipe()
	w := NewWriter(ctx, a)
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := w.Write(randomBytes(t, 1000))
		done <- result{n, err}
	}()
	grant(t, peer, 100)
	received := 0
	for received < 100 {
		m, err := peer.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var d transfertypes.Data
		if err := m.UnmarshalTo(&d); err != nil {
			t.Fatal(err)
		}
		received += len(d.Data)
	}
	if received != 100 {
		t.Fatalf("received %d bytes with 100 granted", received)
	}
	peer.Close()
	res := <-done
	if res.err == nil || res.n != 100 {
		t.Fatalf("Write = %d, %v; want 100 and an error", res.n, res.err)
	}
}

// A Write waiting for window gives up when its context ends.
func TestWriterContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	a, _ := streaming.Pipe()
	w := NewWriter(ctx, a)
	done := make(chan error, 1)
	go func() {
		_, err := w.Write([]byte("blocked"))
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Write: %v, want context.Canceled", err)
	}
}

// Closing the writer unblocks a Write waiting for window.
func TestWriterCloseUnblocksWrite(t *testing.T) {
	a, _ := streaming.Pipe()
	w := NewWriter(context.Background(), a)
	done := make(chan error, 1)
	go func() {
		_, err := w.Write([]byte("blocked"))
		done <- err
	}()
	w.Close()
	if err := <-done; err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

// Bad grants (negative, zero, another message) give no window.
func TestWriterIgnoresBadGrants(t *testing.T) {
	a, peer := streaming.Pipe()
	w := NewWriter(context.Background(), a)
	done := make(chan error, 1)
	go func() {
		_, err := w.Write([]byte("xyz"))
		done <- err
	}()
	grant(t, peer, -1000)
	grant(t, peer, 0)
	other, _ := streaming.MarshalAny(&emptypb.Empty{})
	peer.Send(other)
	grant(t, peer, 2)
	var got []byte
	for len(got) < 2 {
		m, err := peer.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var d transfertypes.Data
		if err := m.UnmarshalTo(&d); err != nil {
			t.Fatal(err)
		}
		got = append(got, d.Data...)
	}
	if string(got) != "xy" {
		t.Fatalf("got %q with 2 bytes granted", got)
	}
	peer.Close()
	if err := <-done; err == nil {
		t.Fatal("Write succeeded with its peer gone")
	}
}

// Closing the reader early stops the writer, which reports an error
// instead of hanging.
func TestReaderEarlyClose(t *testing.T) {
	ctx := context.Background()
	a, b := streaming.Pipe()
	w := NewWriter(ctx, a)
	done := make(chan error, 1)
	go func() {
		// More than the reader's first grants: the writer must wait
		// for window that never comes.
		_, err := w.Write(randomBytes(t, 4*windowSize))
		done <- err
	}()
	r := NewReader(ctx, b)
	if _, err := io.ReadFull(r, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if err := <-done; err == nil {
		t.Fatal("a Write of 4 windows succeeded though the reader closed after 1000 bytes")
	}
	if _, err := r.Read(make([]byte, 10)); err == nil {
		t.Fatal("Read after Close succeeded")
	}
}

// A reader ending its context is closed.
func TestReaderContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	_, b := streaming.Pipe()
	r := NewReader(ctx, b)
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 10))
		done <- err
	}()
	cancel()
	if err := <-done; err == nil || err == io.EOF {
		t.Fatalf("Read: %v, want an error other than EOF", err)
	}
}

// The reader grants window before reading, refuses a peer that sends past
// it, and skips message kinds it does not know.
func TestReaderWindow(t *testing.T) {
	a, peer := streaming.Pipe()
	r := NewReader(context.Background(), a)
	done := make(chan error, 1)
	var got []byte
	go func() {
		var err error
		got, err = io.ReadAll(r)
		done <- err
	}()
	m, err := peer.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var u transfertypes.WindowUpdate
	if err := m.UnmarshalTo(&u); err != nil || u.Update != windowSize {
		t.Fatalf("first message %v (%v), want a window update of %d", m, err, windowSize)
	}
	other, _ := streaming.MarshalAny(&emptypb.Empty{})
	peer.Send(other)
	sendData(t, peer, []byte("ok"))
	// Take the grant the reader may send after "ok", then overrun.
	sendData(t, peer, make([]byte, 3*windowSize))
	go func() {
		for {
			if _, err := peer.Recv(); err != nil {
				return
			}
		}
	}()
	if err := <-done; !errors.Is(err, ErrWindowExceeded) {
		t.Fatalf("ReadAll: %v, want ErrWindowExceeded", err)
	}
	if string(got) != "ok" {
		t.Fatalf("read %q before the overrun, want %q", got, "ok")
	}
}

func TestGenerateIDUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := GenerateID("import")
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
	}
}

// dataBytes reads Data messages as proto.Unmarshal does, without copying.
func TestDataBytes(t *testing.T) {
	for _, want := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte("data"), 10000)} {
		b, err := proto.Marshal(&transfertypes.Data{Data: want})
		if err != nil {
			t.Fatal(err)
		}
		got, err := dataBytes(b)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("dataBytes of %d bytes: %d bytes, %v", len(want), len(got), err)
		}
		if len(got) > 0 && &got[0] != &b[len(b)-len(want)] {
			t.Errorf("dataBytes copied the data")
		}
	}
	// Unknown fields are skipped; a later data field wins.
	b := protowire.AppendTag(nil, 7, protowire.VarintType)
	b = protowire.AppendVarint(b, 42)
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte("first"))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte("second"))
	if got, err := dataBytes(b); err != nil || string(got) != "second" {
		t.Fatalf("dataBytes with an unknown field and two data fields: %q, %v", got, err)
	}
	for _, bad := range [][]byte{{0x0a, 0x05, 'x'}, {0x0a}, {0xff}} {
		if _, err := dataBytes(bad); err == nil {
			t.Errorf("dataBytes(%x) = nil error, want one", bad)
		}
	}
}
