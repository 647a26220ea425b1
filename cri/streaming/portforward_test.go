package streaming

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/errdefs"
)

// podNetns makes a new network namespace with lo up, as a pod's, and
// runs listen inside it (sockets belong to the namespace they are made
// in). It returns the namespace's path: a thread that stays in it, until
// the test ends and the thread is thrown away with it. Nothing is mounted.
func podNetns(t *testing.T, listen func() error) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	path := make(chan string)
	errc := make(chan error, 1)
	end := make(chan struct{})
	go func() {
		// Never unlocked: the thread ends with the goroutine, out of
		// the Go runtime's pool.
		runtime.LockOSThread()
		err := func() error {
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("unshare: %w", err)
			}
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			ifr, err := unix.NewIfreq("lo")
			if err != nil {
				return err
			}
			if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
				return err
			}
			ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
			if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
				return fmt.Errorf("lo up: %w", err)
			}
			return listen()
		}()
		if err != nil {
			errc <- err
			return
		}
		path <- fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		<-end
	}()
	t.Cleanup(func() { close(end) })
	select {
	case p := <-path:
		return p
	case err := <-errc:
		t.Fatalf("pod network namespace: %v", err)
		return ""
	}
}

// serve answers each connection with handle until the test ends.
func serve(t *testing.T, ln net.Listener, handle func(net.Conn)) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
}

// greeter says where it is and echoes a line.
func greeter(where string) func(net.Conn) {
	return func(c net.Conn) {
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Fprintf(c, "%s %s", where, line)
	}
}

// clientStream is the client's side of a port-forward stream: what the
// client sends, ended by closeSend, and what it receives.
type clientStream struct {
	toPodR   *io.PipeReader
	toPodW   *io.PipeWriter
	fromPodR *io.PipeReader
	fromPodW *io.PipeWriter
	closed   chan struct{}
}

func newClientStream() *clientStream {
	s := &clientStream{closed: make(chan struct{})}
	s.toPodR, s.toPodW = io.Pipe()
	s.fromPodR, s.fromPodW = io.Pipe()
	return s
}

// The stream PortForward is given.
func (s *clientStream) Read(p []byte) (int, error)  { return s.toPodR.Read(p) }
func (s *clientStream) Write(p []byte) (int, error) { return s.fromPodW.Write(p) }
func (s *clientStream) Close() error {
	s.fromPodW.Close()
	s.toPodR.Close()
	close(s.closed)
	return nil
}

func forward(t *testing.T, netns string, port int, send string, closeSend bool) (string, error) {
	t.Helper()
	s := newClientStream()
	errc := make(chan error, 1)
	go func() { errc <- PortForward(context.Background(), netns, int32(port), s) }()
	go func() {
		s.toPodW.Write([]byte(send))
		if closeSend {
			s.toPodW.Close()
		}
	}()
	got, _ := io.ReadAll(s.fromPodR)
	err := <-errc
	<-s.closed
	return string(got), err
}

func TestPortForwardInsidePodNetns(t *testing.T) {
	var inside net.Listener
	netns := podNetns(t, func() (err error) {
		inside, err = net.Listen("tcp4", "127.0.0.1:0")
		return err
	})
	serve(t, inside, greeter("inside"))
	port := inside.Addr().(*net.TCPAddr).Port
	// The same port on the host, where it is free: a forward that did not
	// enter the namespace would land here.
	if host, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		serve(t, host, greeter("host"))
	}

	got, err := forward(t, netns, port, "ping\n", false)
	if err != nil || got != "inside ping\n" {
		t.Fatalf("got %q, %v; want the pod's answer", got, err)
	}

	// A forward to the host network.
	var hostLn net.Listener
	hostLn, err = net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, hostLn, greeter("host"))
	got, err = forward(t, "", hostLn.Addr().(*net.TCPAddr).Port, "x\n", false)
	if err != nil || got != "host x\n" {
		t.Fatalf("host network: got %q, %v", got, err)
	}
}

func TestPortForwardHalfClose(t *testing.T) {
	var ln net.Listener
	netns := podNetns(t, func() (err error) {
		ln, err = net.Listen("tcp4", "127.0.0.1:0")
		return err
	})
	// Answers once the client has sent everything.
	serve(t, ln, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		fmt.Fprintf(c, "got %d bytes", len(b))
	})
	got, err := forward(t, netns, ln.Addr().(*net.TCPAddr).Port, strings.Repeat("z", 100000), true)
	if err != nil || got != "got 100000 bytes" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestPortForwardFallsBackToIPv6(t *testing.T) {
	var ln net.Listener
	netns := podNetns(t, func() (err error) {
		ln, err = net.Listen("tcp6", "[::1]:0")
		return err
	})
	serve(t, ln, greeter("v6"))
	got, err := forward(t, netns, ln.Addr().(*net.TCPAddr).Port, "hi\n", false)
	if err != nil || got != "v6 hi\n" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestPortForwardErrors(t *testing.T) {
	var ln net.Listener
	netns := podNetns(t, func() (err error) {
		ln, err = net.Listen("tcp4", "127.0.0.1:0")
		return err
	})
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now

	if _, err := forward(t, netns, port, "", false); err == nil || !strings.Contains(err.Error(), "IPv6") {
		t.Errorf("no listener: %v", err)
	}
	if _, err := forward(t, "/nonexistent/netns", 80, "", false); err == nil {
		t.Error("no error for a missing network namespace")
	}
	if _, err := forward(t, netns, 70000, "", false); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("port 70000: %v", err)
	}
}
