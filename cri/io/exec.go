package io

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/runtime"
)

// ExecIO is an exec'd process's stdio: one client, its streams copied
// straight to and from the fifos.
type ExecIO struct {
	id        string
	stdio     *stdio
	stdinOnce sync.Once
	closeOnce sync.Once
	closeErr  error
}

// NewExecIO makes the fifos of exec id under dir.
func NewExecIO(id, dir string, tty, stdin bool) (*ExecIO, error) {
	config, remove, err := newFifos(id, dir, tty, stdin)
	if err != nil {
		return nil, fmt.Errorf("exec %q: %w", id, err)
	}
	s, err := openStdio(config, true)
	if err != nil {
		remove()
		return nil, fmt.Errorf("exec %q: %w", id, err)
	}
	s.remove = remove
	return &ExecIO{id: id, stdio: s}, nil
}

// IO returns the fifo paths and terminal flag to exec with.
func (e *ExecIO) IO() runtime.IO { return e.stdio.config }

// Attach connects the caller's streams; the channel is closed once the
// process's output has been copied out in full (the shim closed its ends
// of the fifos: the process and whatever inherited its output are gone)
// or Close cut it short. The caller's Stdout and Stderr are closed then.
// Output with no caller stream to go to is read and dropped, so that the
// process never blocks on it. Call it once.
//
// The caller's stdin ending closes the process's stdin if StdinOnce (and
// no tty); otherwise it means the caller went, and the output copies stop.
func (e *ExecIO) Attach(opts AttachOptions) <-chan struct{} {
	var outputs sync.WaitGroup
	copyOut := func(name StreamType, src io.ReadCloser, dst io.WriteCloser) {
		outputs.Go(func() {
			var w io.Writer = io.Discard
			if dst != nil {
				w = dst
			}
			if _, err := copyBuffer(w, src); err != nil {
				log.L.WithError(err).Debugf("copying %s of exec %q", name, e.id)
			}
			src.Close()
			if dst != nil {
				dst.Close()
			}
		})
	}
	if e.stdio.stdout != nil {
		copyOut(Stdout, e.stdio.stdout, opts.Stdout)
	}
	if e.stdio.stderr != nil {
		if opts.Tty {
			opts.Stderr = nil
		}
		copyOut(Stderr, e.stdio.stderr, opts.Stderr)
	}

	var in *interruptible
	if opts.Stdin != nil && e.stdio.stdin != nil {
		in = newInterruptible(opts.Stdin)
		go func() {
			if _, err := copyBuffer(e.stdio.stdin, in); err != nil && !errors.Is(err, errDetached) {
				log.L.WithError(err).Debugf("copying stdin to exec %q", e.id)
			}
			if opts.StdinOnce && !opts.Tty {
				e.stdinOnce.Do(func() {
					e.stdio.stdin.Close()
					if opts.CloseStdin != nil {
						if err := opts.CloseStdin(); err != nil {
							log.L.WithError(err).Warnf("closing stdin of exec %q", e.id)
						}
					}
				})
				return
			}
			for _, out := range []io.Closer{e.stdio.stdout, e.stdio.stderr} {
				if out != nil {
					out.Close()
				}
			}
		}()
	}

	done := make(chan struct{})
	go func() {
		outputs.Wait()
		if in != nil {
			in.stop()
		}
		close(done)
	}()
	return done
}

// Close closes the fifos, which ends Attach's copies, and removes their
// directory.
func (e *ExecIO) Close() error {
	e.closeOnce.Do(func() {
		e.closeErr = errors.Join(e.stdio.close(), e.stdio.remove())
	})
	return e.closeErr
}
