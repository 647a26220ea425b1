package streaming

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
)

// halfCloseGrace is how long the pod's side may go on sending after the
// client has finished sending, before both are closed: enough for a reply
// to a request, not a way for a silent server to hold the stream open.
// containerd waits a second the same way.
const halfCloseGrace = time.Second

// PortForward copies stream to and from port on localhost inside the
// network namespace at netnsPath, until either side closes. An empty
// netnsPath is the host's network (a pod with host networking).
//
// Only the connection is made inside the namespace (a socket belongs to
// the namespace it was made in); the copying runs anywhere. localhost is
// 127.0.0.1, then ::1, as containerd dials tcp4 then tcp6 "localhost".
// The stream is closed on return.
func PortForward(ctx context.Context, netnsPath string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	if port <= 0 || port > math.MaxUint16 {
		return fmt.Errorf("port %d: not a TCP port: %w", port, errdefs.ErrInvalidArgument)
	}
	conn, err := dialInNetns(ctx, netnsPath, int(port))
	if err != nil {
		return err
	}
	defer conn.Close()

	toPod := make(chan error, 1)
	fromPod := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stream)
		toPod <- err
	}()
	go func() {
		_, err := io.Copy(stream, conn)
		fromPod <- err
	}()
	select {
	case err = <-fromPod:
		// The pod's side closed or failed: nothing more to send back.
	case err = <-toPod:
		// The client has sent everything: tell the pod (half close) and
		// give it a moment to answer.
		if cw, ok := conn.(interface{ CloseWrite() error }); ok && err == nil {
			cw.CloseWrite()
		}
		select {
		case e := <-fromPod:
			if err == nil {
				err = e
			}
		case <-time.After(halfCloseGrace):
		case <-ctx.Done():
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("port forward to port %d: %w", port, err)
	}
	return nil
}

// dialInNetns connects to port on the loopback addresses inside the
// network namespace at netnsPath ("" for this one).
func dialInNetns(ctx context.Context, netnsPath string, port int) (net.Conn, error) {
	dial := func() (net.Conn, error) {
		var d net.Dialer
		conn, err4 := d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err4 == nil {
			return conn, nil
		}
		conn, err6 := d.DialContext(ctx, "tcp6", net.JoinHostPort("::1", strconv.Itoa(port)))
		if err6 == nil {
			return conn, nil
		}
		return nil, fmt.Errorf("connect to localhost:%d in network namespace %q: IPv4: %v; IPv6: %v", port, netnsPath, err4, err6)
	}
	if netnsPath == "" {
		return dial()
	}
	target, err := unix.Open(netnsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("network namespace %q: %w", netnsPath, err)
	}
	defer unix.Close(target)

	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	// A goroutine of its own, so that if this thread cannot be put back
	// into our namespace it ends with the goroutine still locked to it,
	// and the Go runtime throws the thread away rather than reusing it.
	go func() {
		runtime.LockOSThread()
		conn, err := func() (net.Conn, error) {
			self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, fmt.Errorf("our network namespace: %w", err)
			}
			defer unix.Close(self)
			if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
				runtime.UnlockOSThread()
				return nil, fmt.Errorf("enter network namespace %q: %w", netnsPath, err)
			}
			// Dialling the IP addresses needs no name lookup, which
			// could run on another thread (cgo's resolver).
			conn, dialErr := dial()
			if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
				log.G(ctx).WithError(err).Error("port forward: cannot return to the daemon's network namespace; dropping the thread")
				return conn, dialErr
			}
			runtime.UnlockOSThread()
			return conn, dialErr
		}()
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}
