package io

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/containerd/fifo"

	"github.com/llitfkitfk/containerd/cio"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/runtime"
)

// stdio is our ends of a process's fifos (nil where there is none) and how
// to remove the fifos.
type stdio struct {
	config runtime.IO
	stdin  io.WriteCloser
	stdout io.ReadCloser
	stderr io.ReadCloser
	remove func() error
}

// newFifos makes the fifo paths of process id in a new directory under
// dir, readable by its owner only (cio's helper), with stdin only when
// asked for and no stderr with a terminal (the terminal carries both
// streams). The fifos are made and opened by openStdio.
func newFifos(id, dir string, tty, stdin bool) (runtime.IO, func() error, error) {
	if id == "" || strings.ContainsAny(id, "/\x00") || id == "." || id == ".." {
		return runtime.IO{}, nil, fmt.Errorf("fifos of %q: not a usable process id: %w", id, errdefs.ErrInvalidArgument)
	}
	if dir == "" {
		return runtime.IO{}, nil, fmt.Errorf("fifos of %q: no directory: %w", id, errdefs.ErrInvalidArgument)
	}
	set, err := cio.NewFIFOSetInDir(dir, id, tty)
	if err != nil {
		return runtime.IO{}, nil, err
	}
	config := runtime.IO{Terminal: tty, Stdin: set.Stdin, Stdout: set.Stdout, Stderr: set.Stderr}
	if !stdin {
		config.Stdin = ""
	}
	if tty {
		config.Stderr = ""
	}
	return config, set.Close, nil
}

// openStdio opens our ends of the fifos of config: stdin for writing,
// stdout and stderr for reading. None blocks: the shim opens the other
// ends when it starts the process, and each read or write waits for that.
// create makes missing fifos (a new process); without it a missing fifo is
// an error (a process found after a restart, whose fifos must be the ones
// the shim holds). On error, what was opened is closed.
func openStdio(config runtime.IO, create bool) (s *stdio, err error) {
	s = &stdio{config: config}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	flags := syscall.O_NONBLOCK
	if create {
		flags |= syscall.O_CREAT
	}
	open := func(name, path string, flag int) (io.ReadWriteCloser, error) {
		if strings.Contains(path, "://") {
			return nil, fmt.Errorf("%s %q: only fifos are supported, not logging URIs: %w", name, path, errdefs.ErrNotImplemented)
		}
		f, err := fifo.OpenFifo(context.Background(), path, flag|flags, 0o700)
		if err != nil {
			return nil, fmt.Errorf("open %s fifo: %w", name, err)
		}
		return &onceCloser{ReadWriteCloser: f}, nil
	}
	if config.Stdin != "" {
		if s.stdin, err = open("stdin", config.Stdin, syscall.O_WRONLY); err != nil {
			return s, err
		}
	}
	if config.Stdout != "" {
		if s.stdout, err = open("stdout", config.Stdout, syscall.O_RDONLY); err != nil {
			return s, err
		}
	}
	if config.Stderr != "" && !config.Terminal {
		if s.stderr, err = open("stderr", config.Stderr, syscall.O_RDONLY); err != nil {
			return s, err
		}
	}
	return s, nil
}

// close closes our ends of the fifos, which ends the copies from and to
// them (a fifo not yet opened by the shim stops waiting).
func (s *stdio) close() error {
	var errs []error
	for _, c := range []io.Closer{s.stdin, s.stdout, s.stderr} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// removeLoadedFifos is how the fifos of a process found after a restart
// are removed: each named pipe among its paths, then their directory if
// that is left empty. Nothing that is not a fifo is touched: the paths
// come from the task, not from us.
func removeLoadedFifos(config runtime.IO) func() error {
	return func() error {
		var errs []error
		dirs := map[string]bool{}
		for _, p := range []string{config.Stdin, config.Stdout, config.Stderr} {
			if p == "" {
				continue
			}
			fi, err := os.Lstat(p)
			if err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
				continue
			}
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				errs = append(errs, err)
			}
			dirs[filepath.Dir(p)] = true
		}
		for d := range dirs {
			// Fails, as it should, if anything else is in there.
			os.Remove(d)
		}
		return errors.Join(errs...)
	}
}

// onceCloser closes a fifo once however many callers get there, and
// concurrently: the fifo package's Close is not meant to run twice at once.
type onceCloser struct {
	io.ReadWriteCloser
	once sync.Once
	err  error
}

func (o *onceCloser) Close() error {
	o.once.Do(func() { o.err = o.ReadWriteCloser.Close() })
	return o.err
}

// bufPool holds the copies' buffers (32 KiB, as io.Copy's).
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func copyBuffer(dst io.Writer, src io.Reader) (int64, error) {
	b := bufPool.Get().(*[]byte)
	defer bufPool.Put(b)
	return io.CopyBuffer(dst, src, *b)
}

// interruptible is a client's stdin that stop can cut off: a Read blocked
// on the client's stream returns at once. The client's stream is read
// by a goroutine of its own, which ends with the stream (the streaming
// server closes it when the request ends).
type interruptible struct {
	pr *io.PipeReader
}

var errDetached = errors.New("detached")

func newInterruptible(r io.Reader) *interruptible {
	pr, pw := io.Pipe()
	go func() {
		_, err := io.Copy(pw, r)
		pw.CloseWithError(err)
	}()
	return &interruptible{pr: pr}
}

func (i *interruptible) Read(p []byte) (int, error) { return i.pr.Read(p) }

func (i *interruptible) stop() { i.pr.CloseWithError(errDetached) }
