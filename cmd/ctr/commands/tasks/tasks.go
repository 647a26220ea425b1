// Package tasks is `ctr tasks`: start, list, signal, exec into and
// delete the tasks of containers.
package tasks

import (
	gocontext "context"
	"errors"
	"net/url"
	"os"
	"os/signal"
	"sync"

	"github.com/containerd/console"
	"github.com/urfave/cli"
	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/cio"
	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/log"
)

// Command is `ctr tasks`.
var Command = cli.Command{
	Name:    "tasks",
	Usage:   "Manage tasks",
	Aliases: []string{"t", "task"},
	Subcommands: []cli.Command{
		attachCommand,
		deleteCommand,
		execCommand,
		listCommand,
		killCommand,
		metricsCommand,
		pauseCommand,
		psCommand,
		resumeCommand,
		startCommand,
	},
}

// resizer is a task or process with a terminal.
type resizer interface {
	Resize(ctx gocontext.Context, w, h uint32) error
}

// HandleConsoleResize sizes the process's terminal as con, now and on
// every SIGWINCH.
func HandleConsoleResize(ctx gocontext.Context, task resizer, con console.Console) error {
	resize := func() {
		size, err := con.Size()
		if err != nil {
			log.GetLogger(ctx).WithError(err).Error("get pty size")
			return
		}
		if err := task.Resize(ctx, uint32(size.Width), uint32(size.Height)); err != nil {
			log.GetLogger(ctx).WithError(err).Error("resize pty")
		}
	}
	if _, err := con.Size(); err != nil {
		return err
	}
	resize()
	s := make(chan os.Signal, 16)
	signal.Notify(s, unix.SIGWINCH)
	go func() {
		for range s {
			resize()
		}
	}()
	return nil
}

// RawConsole is ctr's terminal (the first of stdin, stdout and stderr
// that is one) in raw mode, for a process with a terminal; the caller
// defers its Reset. Without a terminal it is an error, not a panic.
func RawConsole() (console.Console, error) {
	for _, f := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if con, err := console.ConsoleFromFile(f); err == nil {
			if err := con.SetRaw(); err != nil {
				return nil, err
			}
			return con, nil
		}
	}
	return nil, errors.New("a terminal was asked for (--tty) but ctr has none")
}

// IOOptions are how a new process's stdio is wired.
type IOOptions struct {
	// Console is the terminal of a process with one.
	Console console.Console
	NullIO  bool
	// LogURI sends stdout and stderr to a logger (file://, binary://,
	// fifo://) instead of ctr.
	LogURI  string
	FIFODir string
}

// creator is the cio.Creator for o, and for a process without a
// terminal the stdin that closes the process's once read to its end.
func (o IOOptions) creator() (cio.Creator, *stdinCloser, error) {
	switch {
	case o.Console != nil && o.NullIO:
		return nil, nil, errors.New("tty and null-io cannot be used together")
	case o.Console != nil && o.LogURI != "":
		return nil, nil, errors.New("can't use log-uri with tty")
	case o.LogURI != "" && o.FIFODir != "":
		return nil, nil, errors.New("can't use log-uri with fifo-dir")
	case o.Console != nil:
		return cio.NewCreator(cio.WithStreams(o.Console, o.Console, nil), cio.WithTerminal, cio.WithFIFODir(o.FIFODir)), nil, nil
	case o.NullIO:
		return cio.NullIO, nil, nil
	case o.LogURI != "":
		u, err := url.Parse(o.LogURI)
		if err != nil {
			return nil, nil, err
		}
		return cio.LogURI(u), nil, nil
	}
	stdin := &stdinCloser{stdin: os.Stdin}
	return cio.NewCreator(cio.WithStreams(stdin, os.Stdout, os.Stderr), cio.WithFIFODir(o.FIFODir)), stdin, nil
}

// NewTask creates the container's task with stdio as o says.
func NewTask(ctx gocontext.Context, container client.Container, o IOOptions, opts ...client.NewTaskOpts) (client.Task, error) {
	ioCreator, stdin, err := o.creator()
	if err != nil {
		return nil, err
	}
	t, err := container.NewTask(ctx, ioCreator, opts...)
	if err != nil {
		return nil, err
	}
	stdin.setCloser(func() { t.CloseIO(ctx, client.WithStdinCloser) })
	return t, nil
}

// NewTaskOpts are the task options of start's flags.
func NewTaskOpts(context *cli.Context) []client.NewTaskOpts {
	if context.Bool("no-pivot") {
		return []client.NewTaskOpts{client.WithNoPivotRoot}
	}
	return nil
}

// stdinCloser is ctr's stdin, which closes the process's stdin once it
// reaches its end, so a process reading it sees the end too.
type stdinCloser struct {
	stdin  *os.File
	mu     sync.Mutex
	closer func()
	eof    bool
}

func (s *stdinCloser) Read(p []byte) (int, error) {
	n, err := s.stdin.Read(p)
	if err != nil {
		s.mu.Lock()
		s.eof = true
		closer := s.closer
		s.mu.Unlock()
		if closer != nil {
			closer()
		}
	}
	return n, err
}

// setCloser sets what closes the process's stdin, calling it at once if
// the end was reached before the process existed.
func (s *stdinCloser) setCloser(f func()) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.closer = f
	eof := s.eof
	s.mu.Unlock()
	if eof {
		// Not waited for: the task's start need not wait on it.
		go f()
	}
}

// loadTask is the task of container id, with ioAttach for its fifos
// (nil for none).
func loadTask(ctx gocontext.Context, c *client.Client, id string, ioAttach cio.Attach) (client.Task, error) {
	if id == "" {
		return nil, errors.New("container id must be provided")
	}
	container, err := c.LoadContainer(ctx, id)
	if err != nil {
		return nil, err
	}
	return container.Task(ctx, ioAttach)
}

// exitError is ctr's error for a process's exit code: nil
// for 0, else an exit coder that exits ctr with the code, silently, as
// containerd's ctr does.
func exitError(code uint32) error {
	if code == 0 {
		return nil
	}
	return cli.NewExitError("", int(code))
}
