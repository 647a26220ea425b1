package io

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llitfkitfk/containerd/runtime"
)

// shim opens the other ends of a process's fifos, as the shim does: the
// output fifos for writing, stdin for reading. Opening blocks until our
// side has opened too, so each is done in a goroutine of its own.
type shim struct {
	stdin          chan *os.File
	stdout, stderr chan *os.File
}

func openShim(t *testing.T, config runtime.IO) *shim {
	t.Helper()
	s := &shim{}
	open := func(path string, flag int) chan *os.File {
		if path == "" {
			return nil
		}
		ch := make(chan *os.File, 1)
		go func() {
			f, err := os.OpenFile(path, flag, 0)
			if err != nil {
				t.Errorf("shim: %v", err)
				close(ch)
				return
			}
			ch <- f
		}()
		return ch
	}
	s.stdin = open(config.Stdin, os.O_RDONLY)
	s.stdout = open(config.Stdout, os.O_WRONLY)
	s.stderr = open(config.Stderr, os.O_WRONLY)
	return s
}

// sink is an output that hands each Write over a channel and records
// whether it was closed.
type sink struct {
	writes chan string
	mu     sync.Mutex
	closed bool
}

func newSink() *sink { return &sink{writes: make(chan string, 1024)} }

func (s *sink) Write(p []byte) (int, error) {
	s.writes <- string(p)
	return len(p), nil
}

func (s *sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *sink) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// buffer is a client stream: everything written, and whether it was
// closed.
type buffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	closed chan struct{}
}

func newBuffer() *buffer { return &buffer{closed: make(chan struct{})} }

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) Close() error {
	close(b.closed)
	return nil
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func write(t *testing.T, f *os.File, s string) {
	t.Helper()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestNewContainerIOFifos(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "io")
	c, err := NewContainerIO("c1", dir, false, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.IO()
	if cfg.Stdin != "" || cfg.Stdout == "" || cfg.Stderr == "" || cfg.Terminal {
		t.Errorf("no stdin, no tty: got %+v", cfg)
	}
	fifoDir := filepath.Dir(cfg.Stdout)
	if filepath.Dir(fifoDir) != dir {
		t.Errorf("fifos in %s, want a directory of their own under %s", fifoDir, dir)
	}
	fi, err := os.Stat(fifoDir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("fifo directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	for _, p := range []string{cfg.Stdout, cfg.Stderr} {
		if fi, err := os.Stat(p); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
			t.Errorf("%s: not a fifo (%v)", p, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fifoDir); !os.IsNotExist(err) {
		t.Errorf("fifo directory left after Close: %v", err)
	}

	c, err = NewContainerIO("c2", dir, true, true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if cfg := c.IO(); cfg.Stdin == "" || cfg.Stdout == "" || cfg.Stderr != "" || !cfg.Terminal {
		t.Errorf("stdin and tty: got %+v", cfg)
	}

	for _, id := range []string{"", "a/b", ".."} {
		if c, err := NewContainerIO(id, dir, false, false); err == nil {
			c.Close()
			t.Errorf("id %q accepted", id)
		}
	}
}

func TestPipeToLogAndAddOutputReplaces(t *testing.T) {
	c, err := NewContainerIO("c", t.TempDir(), false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out1, err1 := newSink(), newSink()
	if old, _ := c.AddOutput("log", out1, err1); old != nil {
		t.Fatal("first output replaced something")
	}
	c.Pipe()
	sh := openShim(t, c.IO())
	stdout, stderr := <-sh.stdout, <-sh.stderr

	write(t, stdout, "one\n")
	write(t, stderr, "err\n")
	if got := <-out1.writes; got != "one\n" {
		t.Fatalf("log stdout got %q", got)
	}
	if got := <-err1.writes; got != "err\n" {
		t.Fatalf("log stderr got %q", got)
	}

	out2 := newSink()
	oldOut, oldErr := c.AddOutput("log", out2, nil)
	if oldOut != out1 || oldErr != nil {
		t.Fatalf("AddOutput returned %v, %v; want the replaced stdout writer only", oldOut, oldErr)
	}
	write(t, stdout, "two\n")
	if got := <-out2.writes; got != "two\n" {
		t.Fatalf("new log output got %q", got)
	}
	stdout.Close()
	stderr.Close()
	c.Wait()
	if len(out1.writes) != 0 {
		t.Errorf("replaced output still written to: %q", <-out1.writes)
	}
	if out1.isClosed() {
		t.Error("replaced output closed by ContainerIO: closing it is the caller's")
	}
	if !out2.isClosed() || !err1.isClosed() {
		t.Error("outputs not closed once the process's output ended")
	}
	// Once the output has ended, a new output is closed at once.
	out3 := newSink()
	c.AddOutput("log", out3, nil)
	if !out3.isClosed() {
		t.Error("output added after the end not closed")
	}
}

// stuck is a client that stops reading: its Write blocks until it is
// closed.
type stuck struct {
	once    sync.Once
	closed  chan struct{}
	written chan struct{}
}

func (s *stuck) Write(p []byte) (int, error) {
	select {
	case s.written <- struct{}{}:
	default:
	}
	<-s.closed
	return 0, errors.New("closed")
}

func (s *stuck) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func TestSlowClientDoesNotBlockLogOrOthers(t *testing.T) {
	c, err := NewContainerIO("c", t.TempDir(), false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	logPath := filepath.Join(t.TempDir(), "0.log")
	lout, lerr, err := NewLoggers(logPath, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.AddOutput("log", lout, lerr)
	c.Pipe()
	sh := openShim(t, c.IO())
	stdout, stderr := <-sh.stdout, <-sh.stderr
	stderr.Close()

	slow := &stuck{closed: make(chan struct{}), written: make(chan struct{}, 1)}
	good := newBuffer()
	slowDone, goodDone := make(chan struct{}), make(chan struct{})
	go func() { c.Attach(AttachOptions{Stdout: slow}); close(slowDone) }()
	go func() { c.Attach(AttachOptions{Stdout: good}); close(goodDone) }()
	waitOutputs(c.stdout, 3) // the log and both clients

	write(t, stdout, "first\n")
	// The slow client has its first write and sits on it.
	<-slow.written
	// Far more than a client may fall behind by; if the slow client held
	// the copy up, these writes would never finish (the pipe fills).
	line := strings.Repeat("x", 1023) + "\n"
	const lines = 3 * maxClientBacklog / 1024
	// The other client is paced: it is fast, but on a loaded machine its
	// goroutine may not run for a while, and a client that falls a
	// backlog behind is dropped whoever it is. Every quarter backlog the
	// writer lets it catch up; the slow one never does.
	const pace = maxClientBacklog / 1024 / 4
	for i := range lines {
		write(t, stdout, line)
		if (i+1)%pace == 0 {
			want := len("first\n") + (i+1)*len(line)
			deadline := time.Now().Add(10 * time.Second)
			for len(good.String()) < want {
				if time.Now().After(deadline) {
					t.Fatalf("the other client has %d bytes after %d lines, want %d", len(good.String()), i+1, want)
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	stdout.Close()
	c.Wait()
	<-goodDone
	// Dropped, its stream closed, so its Attach returned.
	<-slowDone

	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(parseLog(t, string(b))); got != lines+1 {
		t.Errorf("log has %d lines, want %d", got, lines+1)
	}
	if want := "first\n" + strings.Repeat(line, lines); good.String() != want {
		t.Errorf("the other client got %d bytes, want %d", len(good.String()), len(want))
	}
}

func TestAttachStdinOnceClosesStdin(t *testing.T) {
	c, err := NewContainerIO("c", t.TempDir(), false, true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.AddOutput("log", newSink(), newSink())
	c.Pipe()
	sh := openShim(t, c.IO())

	closed := make(chan struct{})
	out, errOut := newBuffer(), newBuffer()
	attached := make(chan struct{})
	go func() {
		c.Attach(AttachOptions{
			Stdin:      strings.NewReader("input"),
			Stdout:     out,
			Stderr:     errOut,
			StdinOnce:  true,
			CloseStdin: func() error { close(closed); return nil },
		})
		close(attached)
	}()
	// The process reads the client's stdin, then EOF: our end of the
	// fifo was closed when the client's stdin ended.
	stdin := <-sh.stdin
	got, err := io.ReadAll(stdin)
	if err != nil || string(got) != "input" {
		t.Fatalf("process read %q, %v", got, err)
	}
	<-closed
	stdout, stderr := <-sh.stdout, <-sh.stderr
	write(t, stdout, "out\n")
	write(t, stderr, "err\n")
	stdout.Close()
	stderr.Close()
	<-attached
	<-out.closed
	<-errOut.closed
	if out.String() != "out\n" || errOut.String() != "err\n" {
		t.Errorf("client got %q and %q", out.String(), errOut.String())
	}
}

func TestAttachWithoutStdinOnceDetachesWhenStdinEnds(t *testing.T) {
	c, err := NewContainerIO("c", t.TempDir(), true, true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Pipe()
	sh := openShim(t, c.IO())
	stdin := <-sh.stdin
	stdout := <-sh.stdout
	defer stdout.Close()

	pr, pw := io.Pipe()
	out := newBuffer()
	attached := make(chan struct{})
	go func() {
		c.Attach(AttachOptions{
			Stdin: pr, Stdout: out, Tty: true, StdinOnce: true,
			CloseStdin: func() error { t.Error("stdin closed for a tty client"); return nil },
		})
		close(attached)
	}()
	pw.Write([]byte("ab"))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(stdin, buf); err != nil || string(buf) != "ab" {
		t.Fatalf("process read %q, %v", buf, err)
	}
	write(t, stdout, "seen\n")
	// The client hangs up: the attach ends though the process runs on.
	pw.Close()
	<-attached
	<-out.closed
	// A later client still gets the process's output, written after it
	// attached.
	out2 := newBuffer()
	go c.Attach(AttachOptions{Stdout: out2})
	waitOutputs(c.stdout, 1)
	write(t, stdout, "later\n")
	stdout.Close()
	<-out2.closed
	if !strings.HasSuffix(out2.String(), "later\n") {
		t.Errorf("second client got %q", out2.String())
	}
}

func TestAttachEndsWithContext(t *testing.T) {
	c, err := NewContainerIO("c", t.TempDir(), false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Pipe()
	sh := openShim(t, c.IO())
	stdout := <-sh.stdout
	defer stdout.Close()
	ctx, cancel := context.WithCancel(context.Background())
	out := newBuffer()
	attached := make(chan struct{})
	go func() { c.AttachContext(ctx, AttachOptions{Stdout: out}); close(attached) }()
	cancel()
	<-attached
	<-out.closed
	// The process's output is still drained with no one attached.
	write(t, stdout, strings.Repeat("y", 1<<20))
}

func TestLoadContainerIO(t *testing.T) {
	// The fifos as a daemon before the restart left them, held by the
	// shim.
	first, err := NewContainerIO("c", t.TempDir(), false, false)
	if err != nil {
		t.Fatal(err)
	}
	fifos := first.IO()
	sh := openShim(t, fifos)
	stdout, stderr := <-sh.stdout, <-sh.stderr
	// The shim also holds a read end, so that its writes do not fail while
	// no daemon reads.
	keep, err := os.OpenFile(fifos.Stdout, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()

	// The restarted daemon's: what the old one had not read yet is read by
	// the new one.
	write(t, stdout, "before\n")
	first.stdio.close() // the old daemon is gone, its fifos stay
	c, err := LoadContainerIO("c", fifos)
	if err != nil {
		t.Fatal(err)
	}
	log := newSink()
	c.AddOutput("log", log, newSink())
	c.Pipe()
	write(t, stdout, "after\n")
	var got string
	for !strings.Contains(got, "after\n") {
		got += <-log.writes
	}
	if got != "before\nafter\n" {
		t.Errorf("log got %q", got)
	}
	stdout.Close()
	stderr.Close()
	c.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(fifos.Stdout)); !os.IsNotExist(err) {
		t.Errorf("fifos of a loaded container left after Close: %v", err)
	}

	if _, err := LoadContainerIO("c", fifos); err == nil {
		t.Error("loaded fifos that no longer exist")
	}
	if _, err := LoadContainerIO("c", runtime.IO{Stdout: "binary:///bin/logger"}); err == nil {
		t.Error("loaded a logging URI as a fifo")
	}
}

func TestExecIOCompletesWhenTheProcessOutputEnds(t *testing.T) {
	e, err := NewExecIO("e", t.TempDir(), false, true)
	if err != nil {
		t.Fatal(err)
	}
	out, errOut := newBuffer(), newBuffer()
	closed := make(chan struct{})
	done := e.Attach(AttachOptions{
		Stdin:      strings.NewReader("in"),
		Stdout:     out,
		Stderr:     errOut,
		StdinOnce:  true,
		CloseStdin: func() error { close(closed); return nil },
	})
	sh := openShim(t, e.IO())
	stdin, stdout, stderr := <-sh.stdin, <-sh.stdout, <-sh.stderr
	if got, err := io.ReadAll(stdin); err != nil || string(got) != "in" {
		t.Fatalf("process read %q, %v", got, err)
	}
	<-closed
	write(t, stdout, "o")
	write(t, stderr, "e")
	stdout.Close()
	select {
	case <-done:
		t.Fatal("done before stderr ended")
	default:
	}
	stderr.Close()
	<-done
	<-out.closed
	<-errOut.closed
	if out.String() != "o" || errOut.String() != "e" {
		t.Errorf("got %q and %q", out.String(), errOut.String())
	}
	dir := filepath.Dir(e.IO().Stdout)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("exec fifo directory left: %v", err)
	}
}

func TestExecIOCloseEndsAttachOfAProcessThatNeverStarted(t *testing.T) {
	e, err := NewExecIO("e", t.TempDir(), true, false)
	if err != nil {
		t.Fatal(err)
	}
	if e.IO().Stderr != "" {
		t.Errorf("tty exec has a stderr fifo: %+v", e.IO())
	}
	done := e.Attach(AttachOptions{Stdout: newBuffer()})
	e.Close()
	<-done
}

func TestAttachStdinOnlyLastsAsLongAsStdin(t *testing.T) {
	c, err := NewContainerIO("c", t.TempDir(), false, true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Pipe()
	sh := openShim(t, c.IO())
	stdin := <-sh.stdin
	defer func() {
		for _, ch := range []chan *os.File{sh.stdout, sh.stderr} {
			(<-ch).Close()
		}
	}()

	// Asking for nothing the container has returns at once.
	c.Attach(AttachOptions{Stderr: newBuffer(), Tty: true})

	pr, pw := io.Pipe()
	attached := make(chan struct{})
	go func() { c.Attach(AttachOptions{Stdin: pr}); close(attached) }()
	pw.Write([]byte("abc"))
	buf := make([]byte, 3)
	if _, err := io.ReadFull(stdin, buf); err != nil || string(buf) != "abc" {
		t.Fatalf("process read %q, %v", buf, err)
	}
	select {
	case <-attached:
		t.Fatal("attach of stdin ended before the client's stdin")
	default:
	}
	pw.Close()
	<-attached
}

// waitOutputs waits until g has n outputs: an Attach started in a
// goroutine has joined.
func waitOutputs(g *group, n int) {
	for {
		g.mu.Lock()
		k := len(g.outputs)
		g.mu.Unlock()
		if k >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// Log rotation as ReopenContainerLog does it: the kubelet renames the
// log, the runtime opens a new one with AddOutput and closes the old.
func TestReopenLogAfterRotation(t *testing.T) {
	c, err := NewContainerIO("c", t.TempDir(), false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	logPath := filepath.Join(t.TempDir(), "0.log")
	lout, lerr, err := NewLoggers(logPath, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.AddOutput("log", lout, lerr)
	c.Pipe()
	sh := openShim(t, c.IO())
	stdout, stderr := <-sh.stdout, <-sh.stderr

	write(t, stdout, "old\n")
	// The line is in the pipe; wait for it to be in the log.
	for {
		b, _ := os.ReadFile(logPath)
		if strings.Contains(string(b), "old") {
			break
		}
		time.Sleep(time.Millisecond)
	}
	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	nout, nerr, err := NewLoggers(logPath, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := c.AddOutput("log", nout, nerr)
	// Closing returns once the old loggers have written all they got.
	oldOut.Close()
	oldErr.Close()
	write(t, stdout, "new\n")
	write(t, stderr, "new err\n")
	stdout.Close()
	stderr.Close()
	c.Wait()

	contents := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, l := range parseLog(t, string(b)) {
			parts = append(parts, l.stream+":"+l.content)
		}
		return strings.Join(parts, ",")
	}
	if got := contents(rotated); got != "stdout:old" {
		t.Errorf("rotated log: %q", got)
	}
	got := contents(logPath)
	if got != "stdout:new,stderr:new err" && got != "stderr:new err,stdout:new" {
		t.Errorf("new log: %q", got)
	}
}
