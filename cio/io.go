// Package cio wires a task's stdio to the caller: fifos the shim opens,
// copied to and from the caller's streams, or a terminal.
package cio

import "io"

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
func WithStdio(s *Streams) { panic("cio.WithStdio: not yet implemented") }

// WithTerminal gives the process a terminal.
func WithTerminal(s *Streams) { s.Terminal = true }

// WithStreams wires the process to the given streams (nil for none).
func WithStreams(stdin io.Reader, stdout, stderr io.Writer) Opt {
	return func(s *Streams) { s.Stdin, s.Stdout, s.Stderr = stdin, stdout, stderr }
}

// WithFIFODir makes the fifos in dir.
func WithFIFODir(dir string) Opt { return func(s *Streams) { s.FIFODir = dir } }

// NewCreator makes IO that copies between fifos and the streams of opts.
func NewCreator(opts ...Opt) Creator { panic("cio.NewCreator: not yet implemented") }

// NewAttach makes IO that copies between an existing process's fifos and
// the streams of opts.
func NewAttach(opts ...Opt) Attach { panic("cio.NewAttach: not yet implemented") }

// NullIO gives a process no stdio.
func NullIO(id string) (IO, error) { panic("cio.NullIO: not yet implemented") }

// LogFile sends the process's stdout and stderr to the file at path
// (through the shim's file:// logger).
func LogFile(path string) Creator { panic("cio.LogFile: not yet implemented") }

// NewFIFOSetInDir makes the fifo paths of process id under root.
func NewFIFOSetInDir(root, id string, terminal bool) (*FIFOSet, error) {
	panic("cio.NewFIFOSetInDir: not yet implemented")
}
