package server

import (
	"bytes"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestFlowControlWindowsAreFixed speaks HTTP/2 to the gRPC listener by
// hand: the server must announce the fixed stream window and answer a
// call without pinging the client, as the flow-control estimator does
// after a request with data.
func TestFlowControlWindowsAreFixed(t *testing.T) {
	_, c := startServer(t)
	conn, err := net.Dial("unix", c.GRPC.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hdr bytes.Buffer
	enc := hpack.NewEncoder(&hdr)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", "localhost"},
		{":path", "/containerd.services.version.v1.Version/Version"},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	// An empty message: not compressed, zero length.
	if err := fr.WriteData(1, true, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}

	var window uint32
	answered := false
	// Read until the call ends, then a little longer for a late ping.
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn.SetReadDeadline(deadline)
		f, err := fr.ReadFrame()
		if err != nil {
			if answered {
				break
			}
			t.Fatalf("reading the answer: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
				window = v
			}
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				t.Errorf("server pinged the client")
				fr.WritePing(true, f.Data)
			}
		case *http2.HeadersFrame:
			if f.StreamEnded() {
				answered = true
				deadline = time.Now().Add(200 * time.Millisecond)
			}
		}
	}
	if window != streamWindow {
		t.Errorf("stream window %d, want %d", window, streamWindow)
	}
}
