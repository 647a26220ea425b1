// Package io is the stdio of CRI containers and execs: the fifos the shim
// writes a process's streams to, the CRI log format the kubelet reads
// (`<RFC3339Nano time> <stream> <P|F> <line>`), and attaching clients to a
// running process's streams.
package io

import (
	"io"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/runtime"
)

// StreamType is a log line's stream.
type StreamType string

const (
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
type ContainerIO struct{}

// NewContainerIO makes the fifos of container id in a new directory under
// dir (stdin only when stdin is set; stderr not with tty).
func NewContainerIO(id, dir string, tty, stdin bool) (*ContainerIO, error) {
	return nil, errdefs.ErrNotImplemented
}

// LoadContainerIO reopens the fifos of a container made before a daemon
// restart, from its task's IO paths.
func LoadContainerIO(id string, fifos runtime.IO) (*ContainerIO, error) {
	return nil, errdefs.ErrNotImplemented
}

// IO returns the fifo paths and terminal flag to create the task with.
func (c *ContainerIO) IO() runtime.IO { return runtime.IO{} }

// Pipe starts copying the process's output to the outputs; call it after
// the task is created.
func (c *ContainerIO) Pipe() {}

// AddOutput adds (or, for an existing name, replaces) an output and
// returns the writers it replaced, for the caller to close (log rotation:
// ReopenContainerLog).
func (c *ContainerIO) AddOutput(name string, stdout, stderr io.WriteCloser) (io.WriteCloser, io.WriteCloser) {
	return nil, nil
}

// Attach connects a client's streams until the process exits or the
// client goes.
func (c *ContainerIO) Attach(opts AttachOptions) {}

// Close closes the fifos and every output.
func (c *ContainerIO) Close() error { return nil }

// NewCRILogger returns a writer that turns what is written to it into CRI
// log lines on w, for stream, splitting lines longer than maxLen (<= 0:
// no limit) into partial ones; the channel is closed once everything
// written has been flushed to w after Close.
func NewCRILogger(path string, w io.Writer, stream StreamType, maxLen int) (io.WriteCloser, <-chan struct{}) {
	return nil, nil
}

// OpenLog opens (creating, appending) a container log file at path,
// making its directory.
func OpenLog(path string) (io.WriteCloser, error) { return nil, errdefs.ErrNotImplemented }

// ExecIO is an exec'd process's stdio.
type ExecIO struct{}

// NewExecIO makes the fifos of exec id under dir.
func NewExecIO(id, dir string, tty, stdin bool) (*ExecIO, error) {
	return nil, errdefs.ErrNotImplemented
}

// IO returns the fifo paths and terminal flag to exec with.
func (e *ExecIO) IO() runtime.IO { return runtime.IO{} }

// Attach connects the caller's streams; the channel is closed once the
// process's output has been copied out in full.
func (e *ExecIO) Attach(opts AttachOptions) <-chan struct{} { return nil }

// Close closes the fifos and removes their directory.
func (e *ExecIO) Close() error { return nil }
