// Package io is the stdio of CRI containers and execs: the fifos the shim
// writes a process's streams to, the CRI log format the kubelet reads
// (`<RFC3339Nano time> <stream> <P|F> <line>`), and attaching clients to a
// running process's streams.
package io

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/runtime"
)

// StreamType is a log line's stream.
type StreamType string

const (
	Stdin  StreamType = "stdin"
	Stdout StreamType = "stdout"
	Stderr StreamType = "stderr"
)

// AttachOptions are a client's streams attached to a process.
type AttachOptions struct {
	Stdin          io.Reader
	Stdout, Stderr io.WriteCloser
	Tty            bool
	StdinOnce      bool
	// CloseStdin closes the process's stdin (the task's CloseIO), called
	// when a StdinOnce client's stdin ends.
	CloseStdin func() error
}

// ContainerIO is a container's stdio: fifos shared with the shim, their
// output copied to any number of outputs (the log file, attached clients).
type ContainerIO struct {
	id     string
	stdio  *stdio
	stdout *group
	stderr *group

	mu     sync.Mutex
	piped  bool
	closed bool
	copies sync.WaitGroup

	// stdinOnce closes our end of the stdin fifo once, for the first
	// StdinOnce client whose stdin ends.
	stdinOnce sync.Once
	closeOnce sync.Once
	closeErr  error
}

// NewContainerIO makes the fifos of container id in a new directory under
// dir (stdin only when stdin is set; stderr not with tty).
func NewContainerIO(id, dir string, tty, stdin bool) (*ContainerIO, error) {
	config, remove, err := newFifos(id, dir, tty, stdin)
	if err != nil {
		return nil, fmt.Errorf("container %q: %w", id, err)
	}
	s, err := openStdio(config, true)
	if err != nil {
		remove()
		return nil, fmt.Errorf("container %q: %w", id, err)
	}
	s.remove = remove
	return newContainerIO(id, s), nil
}

// LoadContainerIO reopens the fifos of a container made before a daemon
// restart, from its task's IO paths. The fifos must still exist (the shim
// holds them); Close removes them and, if then empty, their directory.
func LoadContainerIO(id string, fifos runtime.IO) (*ContainerIO, error) {
	if fifos.Stdout == "" && fifos.Stdin == "" && fifos.Stderr == "" {
		return nil, fmt.Errorf("container %q: its task has no fifos: %w", id, errdefs.ErrInvalidArgument)
	}
	remove := removeLoadedFifos(fifos)
	if fifos.Terminal {
		// A terminal carries both streams on stdout.
		fifos.Stderr = ""
	}
	s, err := openStdio(fifos, false)
	if err != nil {
		return nil, fmt.Errorf("container %q: %w", id, err)
	}
	s.remove = remove
	return newContainerIO(id, s), nil
}

func newContainerIO(id string, s *stdio) *ContainerIO {
	return &ContainerIO{id: id, stdio: s, stdout: newGroup(), stderr: newGroup()}
}

// IO returns the fifo paths and terminal flag to create the task with.
func (c *ContainerIO) IO() runtime.IO { return c.stdio.config }

// Pipe starts copying the process's output to the outputs; call it after
// the task is created. Outputs added before Pipe see the output from its
// start. The copies end when the shim closes its ends (the process and
// its children are gone) or on Close; then every output is closed.
func (c *ContainerIO) Pipe() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.piped || c.closed {
		return
	}
	c.piped = true
	pipe := func(name StreamType, src io.ReadCloser, dst *group) {
		c.copies.Go(func() {
			if _, err := copyBuffer(dst, src); err != nil {
				log.L.WithError(err).Debugf("copying %s of container %q", name, c.id)
			}
			src.Close()
			dst.close()
		})
	}
	if c.stdio.stdout != nil {
		pipe(Stdout, c.stdio.stdout, c.stdout)
	}
	if c.stdio.stderr != nil {
		pipe(Stderr, c.stdio.stderr, c.stderr)
	}
}

// Wait waits for the copies Pipe started to end: the process's output has
// been taken in full and the outputs closed, so a log output has flushed
// every line (NewLoggers' Close waits for that).
func (c *ContainerIO) Wait() {
	c.copies.Wait()
}

// AddOutput adds (or, for an existing name, replaces) an output and
// returns the writers it replaced, for the caller to close (log rotation:
// ReopenContainerLog). A nil writer leaves that stream's output as it is.
// Writes to the outputs are synchronous: a slow output slows the process
// (as a slow log disk must); attached clients are not outputs of this
// kind (see Attach). After the output has ended the new writers are
// closed at once.
func (c *ContainerIO) AddOutput(name string, stdout, stderr io.WriteCloser) (io.WriteCloser, io.WriteCloser) {
	var oldOut, oldErr io.WriteCloser
	if stdout != nil {
		oldOut = c.stdout.add("output-"+name, stdout)
	}
	if stderr != nil {
		oldErr = c.stderr.add("output-"+name, stderr)
	}
	return oldOut, oldErr
}

// Attach connects a client's streams until the process exits or the
// client goes.
func (c *ContainerIO) Attach(opts AttachOptions) { c.AttachContext(context.Background(), opts) }

var attachSeq atomic.Uint64

// AttachContext connects a client's streams to the process: its stdin to
// the process's stdin, the process's output to its stdout and stderr. It
// returns once the process's output has ended and been sent to the client
// (every client stream it was given is then closed), or the client has
// gone (a write to it failed, it fell more than 1 MiB behind, or ctx
// ended), or, when the client wants no output, its stdin has ended.
//
// The client's stdin ending closes the process's stdin if StdinOnce (and
// no tty), as containerd does; otherwise it means the client detached.
// A client never holds up the log or other clients: its output is queued
// and sent by a goroutine of its own.
func (c *ContainerIO) AttachContext(ctx context.Context, opts AttachOptions) {
	key := "attach-" + strconv.FormatUint(attachSeq.Add(1), 10)
	type client struct {
		g *group
		w *clientWriter
	}
	var clients []client
	if opts.Stdout != nil && c.stdio.stdout != nil {
		w := newClientWriter(opts.Stdout)
		c.stdout.add(key, w)
		clients = append(clients, client{c.stdout, w})
	}
	if opts.Stderr != nil && !opts.Tty && c.stdio.stderr != nil {
		w := newClientWriter(opts.Stderr)
		c.stderr.add(key, w)
		clients = append(clients, client{c.stderr, w})
	}
	detach := func() {
		for _, cl := range clients {
			cl.g.remove(key, cl.w)
		}
	}

	var stdinDone chan struct{}
	var in *interruptible
	if opts.Stdin != nil && c.stdio.stdin != nil {
		in = newInterruptible(opts.Stdin)
		stdinDone = make(chan struct{})
		go func() {
			defer close(stdinDone)
			if _, err := copyBuffer(c.stdio.stdin, in); err != nil && !errors.Is(err, errDetached) {
				log.L.WithError(err).Debugf("copying attached stdin to container %q", c.id)
			}
			if opts.StdinOnce && !opts.Tty {
				c.closeStdin(opts.CloseStdin)
			} else {
				detach()
			}
		}()
	}

	if len(clients) == 0 {
		if in == nil {
			// Nothing the process has was asked for.
			return
		}
		// Nothing to send: the attach lasts as long as the client's stdin.
		select {
		case <-stdinDone:
		case <-ctx.Done():
		}
	}
	for _, cl := range clients {
		select {
		case <-cl.w.done:
		case <-ctx.Done():
			detach()
			<-cl.w.done
		}
		// Dropped clients are still in the group until its next write.
		cl.g.remove(key, cl.w)
	}
	if in != nil {
		// The output is over: stop waiting for the client's stdin. The
		// copy may still be blocked writing to a process that does not
		// read; it ends when the fifo is closed.
		in.stop()
	}
}

// closeStdin closes our end of the stdin fifo, so that the process reads
// EOF, and the shim's (the task's CloseIO).
func (c *ContainerIO) closeStdin(closeIO func() error) {
	c.stdinOnce.Do(func() {
		c.stdio.stdin.Close()
		if closeIO != nil {
			if err := closeIO(); err != nil {
				log.L.WithError(err).Warnf("closing stdin of container %q", c.id)
			}
		}
	})
}

// Close closes the fifos and every output, once the copies have ended,
// and removes the fifos.
func (c *ContainerIO) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		err := c.stdio.close()
		c.copies.Wait()
		c.stdout.close()
		c.stderr.close()
		c.closeErr = errors.Join(err, c.stdio.remove())
	})
	return c.closeErr
}
