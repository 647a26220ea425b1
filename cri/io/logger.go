package io

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/log"
)

// TimestampFormat is the CRI log lines' timestamp: RFC 3339 with nine
// fractional digits always, so that lines are of one shape and sort as
// text. The kubelet parses it with time.RFC3339Nano, which accepts any
// number of digits (containerd writes RFC3339Nano, trailing zeros cut).
const TimestampFormat = "2006-01-02T15:04:05.000000000Z07:00"

// The tags of a CRI log line (cri-api's LogTagFull and LogTagPartial):
// a line that ends the process's line, or a piece of a longer one.
const (
	tagFull    = "F"
	tagPartial = "P"
)

// readSize is the logger's read buffer; lines are split at maxLen when
// that is smaller, so that a piece never waits for more than maxLen bytes.
const readSize = 4096

// NewCRILogger returns a writer that turns what is written to it into CRI
// log lines on w, for stream, splitting lines longer than maxLen (<= 0:
// no limit) into partial ones; the channel is closed once everything
// written has been flushed to w after Close.
//
// Each line goes to w in one Write, so loggers of two streams sharing w
// never tear each other's lines as long as w's Writes are serialised
// (OpenLog's are). Output that ends without a newline is written as a
// partial line, as containerd does: the process's line was not finished.
func NewCRILogger(path string, w io.Writer, stream StreamType, maxLen int) (io.WriteCloser, <-chan struct{}) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		writeCRILog(path, pr, w, stream, maxLen)
		// Whoever still writes learns that no one reads any more.
		pr.Close()
	}()
	return pw, done
}

func writeCRILog(path string, r io.Reader, w io.Writer, stream StreamType, maxLen int) {
	size := readSize
	if maxLen > 0 && maxLen < size {
		size = maxLen
	}
	br := bufio.NewReaderSize(r, size)
	var (
		line      []byte // the process's line so far, not yet written
		out       []byte // the log line being formatted
		writeErrs int
	)
	emit := func(tag string, content []byte) {
		out = time.Now().AppendFormat(out[:0], TimestampFormat)
		out = append(out, ' ')
		out = append(out, stream...)
		out = append(out, ' ')
		out = append(out, tag...)
		out = append(out, ' ')
		out = append(out, content...)
		out = append(out, '\n')
		if _, err := w.Write(out); err != nil {
			// Keep reading: the process must not block on a log that
			// cannot be written. Say so once, not per line.
			if writeErrs == 0 {
				log.L.WithError(err).Errorf("writing %s log to %q", stream, path)
			}
			writeErrs++
		}
	}
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		complete := len(line) > 0 && line[len(line)-1] == '\n'
		if complete {
			line = line[:len(line)-1]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
		}
		// Pieces of maxLen bytes go out as partial lines. While the line
		// is unfinished its last byte stays behind (it is at index >=
		// maxLen), so a '\r' whose '\n' has not come yet is never cut off
		// from it.
		for maxLen > 0 && len(line) > maxLen {
			emit(tagPartial, line[:maxLen])
			line = line[:copy(line, line[maxLen:])]
		}
		if complete {
			emit(tagFull, line)
			line = line[:0]
			continue
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.L.WithError(err).Errorf("reading %s for log %q", stream, path)
			}
			if len(line) > 0 {
				emit(tagPartial, line)
			}
			return
		}
	}
}

// serialFile is a log file shared by a container's stdout and stderr
// loggers: one Write at a time, so that a line is one piece in the file.
type serialFile struct {
	mu sync.Mutex
	f  *os.File
}

func (s *serialFile) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.Write(p)
}

func (s *serialFile) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.Close()
}

// OpenLog opens (creating, appending) a container log file at path,
// making its directory. The file is 0640 and is not followed if it is a
// symlink (a container must not point its log at a host file). Its Writes
// are serialised.
func OpenLog(path string) (io.WriteCloser, error) {
	if path == "" {
		return nil, errors.New("open container log: no path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("open container log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open container log: %w", err)
	}
	return &serialFile{f: f}, nil
}

// NewLoggers returns the "log" output of a container (for AddOutput): CRI
// loggers of stdout and, without tty, stderr, writing to the log file at
// path, which is closed once both loggers are closed. Each logger's Close
// returns once its lines are in the file, so that ContainerIO.Wait means
// the log is complete. With no path the output is discarded. stderr is
// nil with tty.
func NewLoggers(path string, tty bool, maxLen int) (stdout, stderr io.WriteCloser, err error) {
	if path == "" {
		stdout = nopCloser{io.Discard}
		if !tty {
			stderr = nopCloser{io.Discard}
		}
		return stdout, stderr, nil
	}
	f, err := OpenLog(path)
	if err != nil {
		return nil, nil, err
	}
	var outDone, errDone <-chan struct{}
	stdout, outDone = NewCRILogger(path, f, Stdout, maxLen)
	stdout = flushOnClose{stdout, outDone}
	if !tty {
		stderr, errDone = NewCRILogger(path, f, Stderr, maxLen)
		stderr = flushOnClose{stderr, errDone}
	}
	go func() {
		<-outDone
		if errDone != nil {
			<-errDone
		}
		if err := f.Close(); err != nil {
			log.L.WithError(err).Errorf("closing container log %q", path)
		}
	}()
	return stdout, stderr, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// flushOnClose is a CRI logger whose Close waits for its last line.
type flushOnClose struct {
	io.WriteCloser
	done <-chan struct{}
}

func (f flushOnClose) Close() error {
	err := f.WriteCloser.Close()
	<-f.done
	return err
}
