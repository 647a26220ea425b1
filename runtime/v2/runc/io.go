package runc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/fifo"
	gorunc "github.com/containerd/go-runc"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
)

// stdio is where a process's standard streams go, as the daemon gave them:
// fifo paths (or a file:// or binary:// URI for stdout), empty for none.
type stdio struct {
	stdin, stdout, stderr string
	terminal              bool
}

func (s stdio) null() bool {
	return s.stdin == "" && s.stdout == "" && s.stderr == "" && !s.terminal
}

// procIO is a process's side of its stdio: what runc is given, and the
// copying between it and the daemon's fifos or files.
type procIO struct {
	s stdio
	// rio is what runc's command gets as stdio; nil with a terminal,
	// whose streams go through the console instead.
	rio gorunc.IO
	// socket receives the pty master from runc, for a terminal.
	socket  *gorunc.Socket
	console console.Console
	// copyTo is where output copying writes: fifos ("fifo"), a file
	// ("file"), or nothing because the logging binary reads the pipes
	// itself ("binary").
	scheme string
	// copies counts the goroutines still copying output.
	copies sync.WaitGroup

	mu      sync.Mutex
	stdinR  io.Closer      // the daemon's stdin fifo, being copied from
	stdinW  io.WriteCloser // where stdin copying writes
	closers []io.Closer    // closed once output copying is done
	logger  *loggerProc
}

// newProcIO prepares stdio for a process of container id in namespace ns.
func newProcIO(ctx context.Context, r *reaper, id, ns string, s stdio, uid, gid int) (*procIO, error) {
	p := &procIO{s: s}
	if s.terminal {
		socket, err := gorunc.NewTempConsoleSocket()
		if err != nil {
			return nil, fmt.Errorf("console socket for %s: %w", id, err)
		}
		p.socket = socket
		return p, nil
	}
	if s.null() {
		rio, err := gorunc.NewNullIO()
		if err != nil {
			return nil, err
		}
		p.rio = rio
		return p, nil
	}
	u, err := url.Parse(s.stdout)
	if err != nil {
		return nil, fmt.Errorf("stdout %q of %s: %w", s.stdout, id, errdefs.ErrInvalidArgument)
	}
	p.scheme = u.Scheme
	switch u.Scheme {
	case "", "fifo":
		p.scheme = "fifo"
		p.rio, err = gorunc.NewPipeIO(uid, gid, func(o *gorunc.IOOption) {
			o.OpenStdin, o.OpenStdout, o.OpenStderr = s.stdin != "", s.stdout != "", s.stderr != ""
		})
	case "file":
		// Both output streams are appended to the one file.
		if err := os.MkdirAll(filepath.Dir(u.Path), 0o755); err != nil {
			return nil, err
		}
		f, ferr := os.OpenFile(u.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if ferr != nil {
			return nil, fmt.Errorf("stdout of %s: %w", id, ferr)
		}
		p.closers = append(p.closers, f)
		p.rio, err = gorunc.NewPipeIO(uid, gid, func(o *gorunc.IOOption) { o.OpenStdin = s.stdin != "" })
	case "binary", "binary-v2":
		p.logger, err = startLogger(ctx, r, u, id, ns)
		if err == nil {
			p.rio = p.logger
		}
	default:
		return nil, fmt.Errorf("stdout %q of %s: unknown scheme %q: %w", s.stdout, id, u.Scheme, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		p.close()
		return nil, fmt.Errorf("stdio of %s: %w", id, err)
	}
	return p, nil
}

// consoleSocket is runc's --console-socket, nil without a terminal.
func (p *procIO) consoleSocket() gorunc.ConsoleSocket {
	if p.socket == nil {
		return nil
	}
	return p.socket
}

// start begins copying once runc has started the process: between the
// console and the fifos for a terminal, else from the pipes runc's
// process writes to into the fifos or the file.
func (p *procIO) start(ctx context.Context) error {
	if p.socket != nil {
		c, err := p.socket.ReceiveMaster()
		p.socket.Close()
		p.socket = nil
		if err != nil {
			return fmt.Errorf("receive the console from runc: %w", err)
		}
		p.mu.Lock()
		p.console = c
		p.mu.Unlock()
		if err := p.copyOut(ctx, c, p.s.stdout); err != nil {
			return err
		}
		return p.copyIn(c)
	}
	switch p.scheme {
	case "fifo":
		if err := p.copyOut(ctx, p.rio.Stdout(), p.s.stdout); err != nil {
			return err
		}
		if err := p.copyOut(ctx, p.rio.Stderr(), p.s.stderr); err != nil {
			return err
		}
	case "file":
		f := p.closers[0].(*os.File)
		for _, r := range []io.Reader{p.rio.Stdout(), p.rio.Stderr()} {
			p.copies.Add(1)
			go func() {
				defer p.copies.Done()
				_, _ = io.Copy(f, r)
			}()
		}
	}
	if p.rio != nil && p.rio.Stdin() != nil {
		return p.copyIn(p.rio.Stdin())
	}
	return nil
}

// copyOut copies r into the fifo at path until r ends. The fifo is also
// opened for reading, so that opening it for writing does not wait for the
// daemon and writes do not fail while the daemon is not reading.
func (p *procIO) copyOut(ctx context.Context, r io.Reader, path string) error {
	if r == nil || path == "" {
		return nil
	}
	w, err := fifo.OpenFifo(ctx, path, syscall.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open fifo %s: %w", path, err)
	}
	keep, err := fifo.OpenFifo(ctx, path, syscall.O_RDONLY, 0)
	if err != nil {
		w.Close()
		return fmt.Errorf("open fifo %s: %w", path, err)
	}
	p.copies.Add(1)
	go func() {
		defer p.copies.Done()
		buf := make([]byte, 32<<10)
		_, _ = io.CopyBuffer(w, r, buf) // EOF, or EIO once a console's last user is gone
		w.Close()
		keep.Close()
	}()
	return nil
}

// copyIn copies the daemon's stdin fifo into w until the fifo ends or
// CloseIO closes it, then closes w.
func (p *procIO) copyIn(w io.WriteCloser) error {
	if p.s.stdin == "" {
		return nil
	}
	r, err := fifo.OpenFifo(context.Background(), p.s.stdin, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("open fifo %s: %w", p.s.stdin, err)
	}
	p.mu.Lock()
	p.stdinR, p.stdinW = r, w
	p.mu.Unlock()
	go func() {
		buf := make([]byte, 32<<10)
		_, _ = io.CopyBuffer(w, r, buf)
		r.Close()
		p.mu.Lock()
		tty := p.console != nil
		p.mu.Unlock()
		if !tty {
			w.Close() // the process sees EOF; a console stays open for output
		}
	}()
	return nil
}

// closeStdin is CloseIO: the process's stdin reaches its end.
func (p *procIO) closeStdin() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stdinR != nil {
		p.stdinR.Close()
	}
	if p.console != nil {
		// A terminal's end of input is its EOF character, not a close.
		_, _ = p.console.Write([]byte{4})
		return
	}
	if p.stdinW != nil {
		p.stdinW.Close()
	}
	if p.rio != nil && p.rio.Stdin() != nil {
		p.rio.Stdin().Close()
	}
}

func (p *procIO) resize(width, height uint32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.console == nil {
		return fmt.Errorf("the process has no terminal: %w", errdefs.ErrFailedPrecondition)
	}
	return p.console.Resize(console.WinSize{Width: uint16(width), Height: uint16(height)})
}

// wait waits, at most for d, for output copying to end, which it does
// when every holder of the process's output has closed it.
func (p *procIO) wait(d time.Duration) {
	done := make(chan struct{})
	go func() {
		p.copies.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// close releases everything: pipes, console, files, the logging binary.
func (p *procIO) close() {
	if p.socket != nil {
		p.socket.Close()
	}
	p.mu.Lock()
	if p.stdinR != nil {
		p.stdinR.Close()
	}
	if p.console != nil {
		p.console.Close()
	}
	p.mu.Unlock()
	if p.logger != nil {
		p.logger.Close()
	} else if p.rio != nil {
		p.rio.Close()
	}
	for _, c := range p.closers {
		c.Close()
	}
}

// loggerProc is a binary:// logging binary and the pipes it reads: it gets
// the read ends of the container's stdout and stderr as fds 3 and 4, and
// signals readiness on fd 5 by closing it (binary://) or by writing a byte
// first (binary-v2://). The container writes to the write ends directly.
type loggerProc struct {
	outW, errW *os.File
	cmd        *exec.Cmd
	exited     chan gorunc.Exit
	once       sync.Once
}

const loggerStopTimeout = 12 * time.Second

func startLogger(ctx context.Context, r *reaper, u *url.URL, id, ns string) (_ *loggerProc, err error) {
	var args []string
	for k, vs := range u.Query() {
		args = append(args, k)
		if len(vs) > 0 {
			args = append(args, vs[0])
		}
	}
	cmd := exec.Command(u.Path, args...)
	cmd.Env = append(os.Environ(), "CONTAINER_ID="+id, "CONTAINER_NAMESPACE="+ns)
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		for _, f := range []*os.File{outR, outW, errR, errW} {
			f.Close()
		}
		return nil, err
	}
	defer func() {
		// The binary has its own copies of these now, or failed.
		outR.Close()
		errR.Close()
		readyR.Close()
		if err != nil {
			outW.Close()
			errW.Close()
		}
	}()
	cmd.ExtraFiles = []*os.File{outR, errR, readyW}
	exited, err := r.Start(cmd)
	readyW.Close()
	if err != nil {
		return nil, fmt.Errorf("start logging binary %s: %w", u.Path, err)
	}
	l := &loggerProc{outW: outW, errW: errW, cmd: cmd, exited: exited}
	var b [1]byte
	n, rerr := readyR.Read(b[:])
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		l.kill()
		return nil, fmt.Errorf("wait for logging binary %s: %w", u.Path, rerr)
	}
	if u.Scheme == "binary-v2" && n == 0 {
		l.kill()
		return nil, fmt.Errorf("logging binary %s closed fd 5 without saying it is ready", u.Path)
	}
	log.GetLogger(ctx).Debugf("logging binary %s ready for %s", u.Path, id)
	return l, nil
}

func (l *loggerProc) Stdin() io.WriteCloser  { return nil }
func (l *loggerProc) Stdout() io.ReadCloser  { return nil }
func (l *loggerProc) Stderr() io.ReadCloser  { return nil }
func (l *loggerProc) Set(cmd *exec.Cmd)      { cmd.Stdout, cmd.Stderr = l.outW, l.errW }
func (l *loggerProc) CloseAfterStart() error { l.outW.Close(); l.errW.Close(); return nil }

// Close lets the binary drain what is left: it sees the end of its pipes
// once the container's processes are gone; it is killed if it takes
// longer than loggerStopTimeout.
func (l *loggerProc) Close() error {
	l.once.Do(func() {
		l.outW.Close()
		l.errW.Close()
		select {
		case <-l.exited:
		case <-time.After(loggerStopTimeout):
			_ = l.cmd.Process.Kill()
			<-l.exited
		}
		_ = l.cmd.Wait() // reaped already; releases what exec holds
	})
	return nil
}

func (l *loggerProc) kill() {
	_ = l.cmd.Process.Kill()
	l.Close()
}
