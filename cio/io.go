// Package cio wires a task's stdio to the caller: fifos the shim opens,
// copied to and from the caller's streams, or a terminal.
package cio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/containerd/fifo"
)

// DefaultFIFODir is where fifos are made unless WithFIFODir says
// otherwise, as containerd's.
const DefaultFIFODir = "/run/containerd/fifo"

// Config is what the daemon is told of a process's stdio: paths (fifos or
// logger URIs) and whether it has a terminal.
type Config struct {
	Terminal bool
	Stdin    string
	Stdout   string
	Stderr   string
}

// IO is a process's stdio as the client holds it.
type IO interface {
	Config() Config
	// Cancel stops copying (after the process exits or on error).
	Cancel()
	// Wait waits for the copies to finish (the process's output drained).
	Wait()
	// Close releases the fifos.
	Close() error
}

// Creator makes the IO of a new process.
type Creator func(id string) (IO, error)

// Attach makes the IO of an existing process from its fifos.
type Attach func(*FIFOSet) (IO, error)

// FIFOSet is a process's fifos and how to remove them.
type FIFOSet struct {
	Config
	close func() error
}

// NewFIFOSet is a set of fifos removed by close.
func NewFIFOSet(config Config, close func() error) *FIFOSet {
	return &FIFOSet{Config: config, close: close}
}

// Close removes the fifos.
func (f *FIFOSet) Close() error {
	if f == nil || f.close == nil {
		return nil
	}
	return f.close()
}

// Streams are the caller's side of a process's stdio.
type Streams struct {
	Stdin    io.Reader
	Stdout   io.Writer
	Stderr   io.Writer
	Terminal bool
	// FIFODir is where the fifos are made; "" means the default,
	// /run/containerd/fifo, as containerd's.
	FIFODir string
}

// Opt sets a Streams field.
type Opt func(*Streams)

// WithStdio wires the process to this program's stdin, stdout, stderr.
func WithStdio(s *Streams) { WithStreams(os.Stdin, os.Stdout, os.Stderr)(s) }

// WithTerminal gives the process a terminal.
func WithTerminal(s *Streams) { s.Terminal = true }

// WithStreams wires the process to the given streams (nil for none).
func WithStreams(stdin io.Reader, stdout, stderr io.Writer) Opt {
	return func(s *Streams) { s.Stdin, s.Stdout, s.Stderr = stdin, stdout, stderr }
}

// WithFIFODir makes the fifos in dir.
func WithFIFODir(dir string) Opt { return func(s *Streams) { s.FIFODir = dir } }

func streamsOf(opts []Opt) *Streams {
	s := &Streams{}
	for _, o := range opts {
		o(s)
	}
	return s
}

// NewCreator makes IO that copies between fifos and the streams of opts.
// Each process gets a directory of its own under the fifo dir, removed by
// Close.
func NewCreator(opts ...Opt) Creator {
	streams := streamsOf(opts)
	if streams.FIFODir == "" {
		streams.FIFODir = DefaultFIFODir
	}
	return func(id string) (IO, error) {
		fifos, err := NewFIFOSetInDir(streams.FIFODir, id, streams.Terminal)
		if err != nil {
			return nil, err
		}
		return copyIO(fifos, streams)
	}
}

// NewAttach makes IO that copies between an existing process's fifos and
// the streams of opts.
func NewAttach(opts ...Opt) Attach {
	streams := streamsOf(opts)
	return func(fifos *FIFOSet) (IO, error) {
		if fifos == nil {
			return nil, errors.New("cannot attach: the process has no fifos")
		}
		return copyIO(fifos, streams)
	}
}

// NewFIFOSetInDir makes the fifo paths of process id under root: a new
// directory, readable by its owner only, named at random so that two
// clients of one process id do not meet. The fifos themselves are made
// when opened. Close removes the directory.
func NewFIFOSetInDir(root, id string, terminal bool) (*FIFOSet, error) {
	if root != "" {
		if err := os.MkdirAll(root, 0o700); err != nil {
			return nil, fmt.Errorf("fifo dir: %w", err)
		}
	}
	dir, err := os.MkdirTemp(root, "")
	if err != nil {
		return nil, fmt.Errorf("fifo dir: %w", err)
	}
	config := Config{
		Terminal: terminal,
		Stdin:    filepath.Join(dir, id+"-stdin"),
		Stdout:   filepath.Join(dir, id+"-stdout"),
		Stderr:   filepath.Join(dir, id+"-stderr"),
	}
	return NewFIFOSet(config, func() error { return os.RemoveAll(dir) }), nil
}

// bufPool holds the copies' buffers: a process's output is copied in
// 32 KiB reads, and many processes come and go.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func copyBuffer(dst io.Writer, src io.Reader) {
	b := bufPool.Get().(*[]byte)
	defer bufPool.Put(b)
	io.CopyBuffer(dst, src, *b)
}

// pipes are the client's ends of a process's fifos; nil where there is
// none.
type pipes struct {
	stdin          io.WriteCloser
	stdout, stderr io.ReadCloser
}

func (p pipes) Close() error {
	var errs []error
	for _, c := range []io.Closer{p.stdin, p.stdout, p.stderr} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// onceCloser closes a fifo once, however many of the copy, Cancel and
// Close get there, and concurrently: the fifo package's Close is not
// meant to be called twice at once. Later callers wait for the first.
type onceCloser struct {
	io.ReadWriteCloser
	once sync.Once
	err  error
}

func (o *onceCloser) Close() error {
	o.once.Do(func() { o.err = o.ReadWriteCloser.Close() })
	return o.err
}

// openFifos opens (making them if need be) the client's ends of the
// fifos fifos names: stdin for writing, stdout and stderr for reading.
// None blocks: the shim opens the other ends later, or never, and each
// copy waits for its own. A terminal has no stderr: the terminal carries
// both streams to stdout. On error the fifo set is removed.
func openFifos(ctx context.Context, fifos *FIFOSet) (p pipes, err error) {
	defer func() {
		if err != nil {
			p.Close()
			fifos.Close()
		}
	}()
	open := func(path string, flag int) (io.ReadWriteCloser, error) {
		f, err := fifo.OpenFifo(ctx, path, flag|syscall.O_CREAT|syscall.O_NONBLOCK, 0o700)
		if err != nil {
			return nil, err
		}
		return &onceCloser{ReadWriteCloser: f}, nil
	}
	if fifos.Stdin != "" {
		if p.stdin, err = open(fifos.Stdin, syscall.O_WRONLY); err != nil {
			return p, fmt.Errorf("open stdin fifo: %w", err)
		}
	}
	if fifos.Stdout != "" {
		if p.stdout, err = open(fifos.Stdout, syscall.O_RDONLY); err != nil {
			return p, fmt.Errorf("open stdout fifo: %w", err)
		}
	}
	if fifos.Stderr != "" && !fifos.Terminal {
		if p.stderr, err = open(fifos.Stderr, syscall.O_RDONLY); err != nil {
			return p, fmt.Errorf("open stderr fifo: %w", err)
		}
	}
	return p, nil
}

// copyIO opens the fifos of the streams there are and copies between
// them: stdin until the caller's stdin ends (then the fifo is closed, so
// the process reads EOF), stdout and stderr until the process's side is
// closed (the process exited) or the copy is cancelled.
func copyIO(fifos *FIFOSet, streams *Streams) (*cio, error) {
	// What the daemon is told matches what is copied: a fifo no one
	// reads would block the process writing to it.
	if streams.Stdin == nil {
		fifos.Stdin = ""
	}
	if streams.Stdout == nil {
		fifos.Stdout = ""
	}
	if streams.Stderr == nil || fifos.Terminal {
		fifos.Stderr = ""
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := openFifos(ctx, fifos)
	if err != nil {
		cancel()
		return nil, err
	}
	if p.stdin != nil {
		// Not waited for: the caller's stdin may never end.
		go func() {
			copyBuffer(p.stdin, streams.Stdin)
			p.stdin.Close()
		}()
	}
	wg := &sync.WaitGroup{}
	if p.stdout != nil {
		wg.Go(func() {
			copyBuffer(streams.Stdout, p.stdout)
			p.stdout.Close()
		})
	}
	if p.stderr != nil {
		wg.Go(func() {
			copyBuffer(streams.Stderr, p.stderr)
			p.stderr.Close()
		})
	}
	return &cio{
		config:  fifos.Config,
		wg:      wg,
		closers: []io.Closer{p, fifos},
		cancel: func() {
			cancel()
			p.Close()
		},
	}, nil
}

// cio is an IO of fifos (or of nothing, for NullIO and Load).
type cio struct {
	config  Config
	wg      *sync.WaitGroup
	closers []io.Closer
	cancel  func()
}

func (c *cio) Config() Config { return c.config }

func (c *cio) Wait() {
	if c.wg != nil {
		c.wg.Wait()
	}
}

func (c *cio) Cancel() {
	if c.cancel != nil {
		c.cancel()
	}
}

// Close closes the client's ends of the fifos (ending any copy) and
// removes the fifos.
func (c *cio) Close() error {
	var errs []error
	for _, cl := range c.closers {
		if err := cl.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// NullIO gives a process no stdio.
func NullIO(id string) (IO, error) { return &cio{}, nil }

// Load is the IO of an existing process's fifos without copying from them:
// for a process being deleted, whose fifos Close removes.
func Load(set *FIFOSet) (IO, error) {
	return &cio{config: set.Config, closers: []io.Closer{set}}, nil
}

// DirectIO is the IO of a process whose fifos the caller reads and writes
// itself: Stdin, Stdout, Stderr are nil for streams the process does not
// have.
type DirectIO struct {
	Stdin  io.WriteCloser
	Stdout io.ReadCloser
	Stderr io.ReadCloser
	cio
}

// NewDirectIO opens fifos's client ends for the caller to use directly.
// Opening does not wait for the process's side.
func NewDirectIO(ctx context.Context, fifos *FIFOSet) (*DirectIO, error) {
	ctx, cancel := context.WithCancel(ctx)
	p, err := openFifos(ctx, fifos)
	if err != nil {
		cancel()
		return nil, err
	}
	return &DirectIO{
		Stdin:  p.stdin,
		Stdout: p.stdout,
		Stderr: p.stderr,
		cio: cio{
			config:  fifos.Config,
			closers: []io.Closer{p, fifos},
			cancel:  func() { cancel(); p.Close() },
		},
	}, nil
}

// logURI is the IO of a process whose output the shim sends to a logger
// named by a URI: nothing to copy or close on the client's side.
type logURI struct{ config Config }

func (l *logURI) Config() Config { return l.config }
func (l *logURI) Cancel()        {}
func (l *logURI) Wait()          {}
func (l *logURI) Close() error   { return nil }

func logCreator(uri string, terminal bool) Creator {
	return func(string) (IO, error) {
		return &logURI{config: Config{Stdout: uri, Stderr: uri, Terminal: terminal}}, nil
	}
}

// LogURI sends the process's stdout and stderr to the shim's logger uri
// (file:///path, binary:///path?args, fifo:///path).
func LogURI(uri *url.URL) Creator { return logCreator(uri.String(), false) }

// TerminalLogURI is LogURI with a terminal.
func TerminalLogURI(uri *url.URL) Creator { return logCreator(uri.String(), true) }

// LogFile sends the process's stdout and stderr to the file at path
// (through the shim's file:// logger).
func LogFile(path string) Creator {
	uri, err := LogURIGenerator("file", path, nil)
	if err != nil {
		return func(string) (IO, error) { return nil, err }
	}
	return LogURI(uri)
}

// BinaryIO sends the process's stdout and stderr to the logging program
// binary, run by the shim with args.
func BinaryIO(binary string, args map[string]string) Creator {
	uri, err := LogURIGenerator("binary", binary, args)
	if err != nil {
		return func(string) (IO, error) { return nil, err }
	}
	return LogURI(uri)
}

// TerminalBinaryIO is BinaryIO with a terminal.
func TerminalBinaryIO(binary string, args map[string]string) Creator {
	uri, err := LogURIGenerator("binary", binary, args)
	if err != nil {
		return func(string) (IO, error) { return nil, err }
	}
	return TerminalLogURI(uri)
}

// LogURIGenerator makes the URI scheme:///path?args of a logger; path
// must be absolute.
func LogURIGenerator(scheme, path string, args map[string]string) (*url.URL, error) {
	path = filepath.Clean(path)
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("log path %q must be absolute", path)
	}
	u := &url.URL{Scheme: scheme, Path: path}
	if len(args) > 0 {
		q := u.Query()
		for k, v := range args {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
	}
	return u, nil
}
