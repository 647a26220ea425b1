package cio

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hangGuard fails the test if fn does not return within a generous time:
// what is tested is that it returns at all, not how fast.
func hangGuard(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s hangs", what)
	}
}

// shimSide opens the process's ends of the fifos as the shim does:
// stdin to read, stdout and stderr to write.
type shimSide struct {
	stdin, stdout, stderr *os.File
}

func openShimSide(t *testing.T, c Config) *shimSide {
	t.Helper()
	var s shimSide
	var err error
	if c.Stdin != "" {
		if s.stdin, err = os.OpenFile(c.Stdin, os.O_RDONLY, 0); err != nil {
			t.Fatal(err)
		}
	}
	if c.Stdout != "" {
		if s.stdout, err = os.OpenFile(c.Stdout, os.O_WRONLY, 0); err != nil {
			t.Fatal(err)
		}
	}
	if c.Stderr != "" {
		if s.stderr, err = os.OpenFile(c.Stderr, os.O_WRONLY, 0); err != nil {
			t.Fatal(err)
		}
	}
	return &s
}

func isFifo(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("%s is %v, not a fifo", path, fi.Mode())
	}
}

func TestCopyBothWays(t *testing.T) {
	dir := t.TempDir()
	in := make([]byte, 1<<20) // many 32 KiB buffers' worth
	rand.Read(in)
	var stdout, stderr bytes.Buffer
	ioc, err := NewCreator(WithStreams(bytes.NewReader(in), &stdout, &stderr), WithFIFODir(dir))("c1")
	if err != nil {
		t.Fatal(err)
	}
	c := ioc.Config()
	if c.Terminal || c.Stdin == "" || c.Stdout == "" || c.Stderr == "" {
		t.Fatalf("config %+v", c)
	}
	fifoDir := filepath.Dir(c.Stdout)
	if filepath.Dir(fifoDir) != dir || filepath.Dir(c.Stdin) != fifoDir || filepath.Dir(c.Stderr) != fifoDir {
		t.Fatalf("fifos %+v not in one new directory under %s", c, dir)
	}
	if fi, err := os.Stat(fifoDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("fifo dir: %v %v", fi.Mode(), err)
	}
	for _, p := range []string{c.Stdin, c.Stdout, c.Stderr} {
		isFifo(t, p)
		if !strings.HasPrefix(filepath.Base(p), "c1-std") {
			t.Errorf("fifo %s not named after the process", p)
		}
	}

	shim := openShimSide(t, c)
	// The process echoes its stdin to stdout, then writes to stderr.
	var got []byte
	var rerr error
	var wg sync.WaitGroup
	wg.Go(func() { got, rerr = io.ReadAll(shim.stdin) })
	out := make([]byte, 3<<20)
	rand.Read(out)
	if _, err := shim.stdout.Write(out); err != nil {
		t.Fatal(err)
	}
	if _, err := shim.stderr.Write([]byte("oops\n")); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if rerr != nil || !bytes.Equal(got, in) {
		t.Fatalf("process read %d bytes of stdin (%v), want %d", len(got), rerr, len(in))
	}
	shim.stdout.Close()
	shim.stderr.Close()
	shim.stdin.Close()

	hangGuard(t, "Wait after the process closed its output", ioc.Wait)
	if !bytes.Equal(stdout.Bytes(), out) {
		t.Fatalf("stdout: got %d bytes, want %d", stdout.Len(), len(out))
	}
	if stderr.String() != "oops\n" {
		t.Fatalf("stderr %q", stderr.String())
	}
	if err := ioc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fifoDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("fifo dir left after Close: %v", err)
	}
}

func TestTerminal(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	ioc, err := NewCreator(WithStreams(nil, &stdout, &stderr), WithTerminal, WithFIFODir(dir))("t")
	if err != nil {
		t.Fatal(err)
	}
	defer ioc.Close()
	c := ioc.Config()
	// A terminal carries the process's stdout and stderr both to the
	// stdout fifo; there is no stdin stream here.
	if !c.Terminal || c.Stdout == "" || c.Stderr != "" || c.Stdin != "" {
		t.Fatalf("config %+v", c)
	}
	shim := openShimSide(t, c)
	shim.stdout.Write([]byte("tty output\r\n"))
	shim.stdout.Close()
	hangGuard(t, "Wait", ioc.Wait)
	if stdout.String() != "tty output\r\n" || stderr.Len() != 0 {
		t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
}

func TestNoStreamsNoFifos(t *testing.T) {
	dir := t.TempDir()
	var stdout bytes.Buffer
	ioc, err := NewCreator(WithStreams(nil, &stdout, nil), WithFIFODir(dir))("x")
	if err != nil {
		t.Fatal(err)
	}
	defer ioc.Close()
	// A fifo the daemon is told of must have a reader, or the process
	// blocks writing to it: streams not given are not passed on.
	if c := ioc.Config(); c.Stdin != "" || c.Stderr != "" || c.Stdout == "" {
		t.Fatalf("config %+v", c)
	}
}

// The shim never opens its ends (the task was never created): neither
// creating the IO nor closing it may wait for it, even with a stdin that
// never ends.
func TestShimNeverOpens(t *testing.T) {
	dir := t.TempDir()
	stdinR, stdinW := io.Pipe()
	defer stdinW.Close()
	var stdout, stderr bytes.Buffer
	var ioc IO
	hangGuard(t, "creating the IO", func() {
		var err error
		ioc, err = NewCreator(WithStreams(stdinR, &stdout, &stderr), WithFIFODir(dir))("n")
		if err != nil {
			t.Error(err)
		}
	})
	if ioc == nil {
		t.FailNow()
	}
	fifoDir := filepath.Dir(ioc.Config().Stdout)
	hangGuard(t, "Close", func() {
		if err := ioc.Close(); err != nil {
			t.Error(err)
		}
	})
	hangGuard(t, "Wait after Close", ioc.Wait)
	if _, err := os.Stat(fifoDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("fifo dir left after Close: %v", err)
	}
}

func TestCancelEndsCopies(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	ioc, err := NewCreator(WithStreams(nil, &stdout, &stderr), WithFIFODir(dir))("k")
	if err != nil {
		t.Fatal(err)
	}
	defer ioc.Close()
	// The process opened its output but never closes it (a daemonized
	// child holds it): Cancel ends the copies so Wait returns.
	shim := openShimSide(t, ioc.Config())
	defer shim.stdout.Close()
	defer shim.stderr.Close()
	ioc.Cancel()
	hangGuard(t, "Wait after Cancel", ioc.Wait)
}

func TestAttach(t *testing.T) {
	dir := t.TempDir()
	set, err := NewFIFOSetInDir(dir, "a", false)
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	ioc, err := NewAttach(WithStreams(strings.NewReader("input"), &stdout, nil))(set)
	if err != nil {
		t.Fatal(err)
	}
	c := ioc.Config()
	if c.Stderr != "" {
		t.Fatalf("attached stderr without a stream: %+v", c)
	}
	shim := openShimSide(t, c)
	in, _ := io.ReadAll(shim.stdin)
	shim.stdout.Write([]byte("output"))
	shim.stdout.Close()
	hangGuard(t, "Wait", ioc.Wait)
	if string(in) != "input" || stdout.String() != "output" {
		t.Fatalf("stdin %q stdout %q", in, stdout.String())
	}
	if err := ioc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(c.Stdout)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("fifo dir left after Close: %v", err)
	}

	if _, err := NewAttach(WithStdio)(nil); err == nil {
		t.Fatal("attached to no fifos")
	}
}

func TestDirectIO(t *testing.T) {
	set, err := NewFIFOSetInDir(t.TempDir(), "d", false)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDirectIO(t.Context(), set)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	shim := openShimSide(t, d.Config())
	shim.stderr.Write([]byte("e"))
	shim.stderr.Close()
	b, err := io.ReadAll(d.Stderr)
	if err != nil || string(b) != "e" {
		t.Fatalf("stderr %q %v", b, err)
	}
	d.Stdin.Write([]byte("i"))
	d.Stdin.Close()
	b, _ = io.ReadAll(shim.stdin)
	if string(b) != "i" {
		t.Fatalf("stdin %q", b)
	}
}

func TestWithStdio(t *testing.T) {
	var s Streams
	WithStdio(&s)
	if s.Stdin != os.Stdin || s.Stdout != os.Stdout || s.Stderr != os.Stderr {
		t.Fatalf("%+v", s)
	}
}

func TestNullIO(t *testing.T) {
	ioc, err := NullIO("x")
	if err != nil {
		t.Fatal(err)
	}
	if ioc.Config() != (Config{}) {
		t.Fatalf("config %+v", ioc.Config())
	}
	ioc.Cancel()
	ioc.Wait()
	if err := ioc.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLoggers(t *testing.T) {
	ioc, err := LogFile("/var/log/x/../task.log")("id")
	if err != nil {
		t.Fatal(err)
	}
	if c := ioc.Config(); c != (Config{Stdout: "file:///var/log/task.log", Stderr: "file:///var/log/task.log"}) {
		t.Fatalf("LogFile config %+v", c)
	}
	if _, err := LogFile("relative.log")("id"); err == nil || !strings.Contains(err.Error(), "relative.log") {
		t.Fatalf("relative log path: %v", err)
	}

	ioc, err = BinaryIO("/usr/bin/logger", map[string]string{"tag": "a b"})("id")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(ioc.Config().Stdout)
	if err != nil || u.Scheme != "binary" || u.Path != "/usr/bin/logger" || u.Query().Get("tag") != "a b" {
		t.Fatalf("BinaryIO uri %q %v", ioc.Config().Stdout, err)
	}

	u, _ = url.Parse("fifo:///run/x")
	ioc, _ = TerminalLogURI(u)("id")
	if c := ioc.Config(); !c.Terminal || c.Stdout != "fifo:///run/x" || c.Stderr != "fifo:///run/x" {
		t.Fatalf("TerminalLogURI config %+v", c)
	}
}

func TestLoad(t *testing.T) {
	set, err := NewFIFOSetInDir(t.TempDir(), "l", true)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(set.Stdout, 0o600); err != nil {
		t.Fatal(err)
	}
	ioc, err := Load(set)
	if err != nil {
		t.Fatal(err)
	}
	if !ioc.Config().Terminal {
		t.Fatal("config lost")
	}
	if err := ioc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(set.Stdout)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("fifo dir left after Close: %v", err)
	}
}
