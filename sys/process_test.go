package sys

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestOOMScore(t *testing.T) {
	pid := os.Getpid()
	cur, err := GetOOMScore(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Raising the score needs no privilege.
	want := cur + 1
	if want > OOMScoreAdjMax {
		want = OOMScoreAdjMax
	}
	if err := SetOOMScore(pid, want); err != nil {
		t.Fatal(err)
	}
	if got, _ := GetOOMScore(pid); got != want {
		t.Fatalf("oom score = %d, want %d", got, want)
	}
	if err := SetOOMScore(pid, OOMScoreAdjMax+1); err == nil {
		t.Fatal("out of range score accepted")
	}
}

func TestSubreaper(t *testing.T) {
	if err := SetSubreaper(); err != nil {
		t.Fatal(err)
	}
	on, err := GetSubreaper()
	if err != nil || !on {
		t.Fatalf("subreaper = %v, %v", on, err)
	}
}

func TestSdNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	sent, err := SdNotify(NotifyReady)
	if err != nil || !sent {
		t.Fatalf("SdNotify = %v, %v", sent, err)
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != NotifyReady {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := SdNotify(NotifyReady); sent || err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v, %v", sent, err)
	}
}
