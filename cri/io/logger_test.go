package io

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// logLine is a CRI log line taken apart.
type logLine struct {
	ts      time.Time
	stream  string
	tag     string
	content string
}

var lineRE = regexp.MustCompile(`^(\S+) (stdout|stderr) ([PF]) (.*)$`)

// parseLog parses CRI log text as the kubelet does (time.RFC3339Nano),
// and checks the timestamps have nine fractional digits.
func parseLog(t *testing.T, text string) []logLine {
	t.Helper()
	if text == "" {
		return nil
	}
	if !strings.HasSuffix(text, "\n") {
		t.Fatalf("log does not end with a newline: %q", text)
	}
	var lines []logLine
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		m := lineRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not a CRI log line: %q", l)
		}
		ts, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			t.Fatalf("timestamp of %q: %v", l, err)
		}
		if frac := regexp.MustCompile(`\.(\d+)`).FindStringSubmatch(m[1]); frac == nil || len(frac[1]) != 9 {
			t.Fatalf("timestamp %q has not 9 fractional digits", m[1])
		}
		lines = append(lines, logLine{ts, m[2], m[3], m[4]})
	}
	return lines
}

// logOf writes the chunks to a CRI logger and returns what it made,
// once Close has been flushed.
func logOf(t *testing.T, stream StreamType, maxLen int, chunks ...string) []logLine {
	t.Helper()
	var b strings.Builder
	w, done := NewCRILogger("test", &b, stream, maxLen)
	for _, c := range chunks {
		if _, err := w.Write([]byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	<-done
	return parseLog(t, b.String())
}

func tagsAndContent(lines []logLine) string {
	var parts []string
	for _, l := range lines {
		parts = append(parts, l.tag+":"+l.content)
	}
	return strings.Join(parts, "|")
}

func TestCRILoggerFullAndPartialLines(t *testing.T) {
	before := time.Now()
	lines := logOf(t, Stderr, 0, "hello\nwor", "ld\r\n\n", "no newline at the end")
	if got, want := tagsAndContent(lines), "F:hello|F:world|F:|P:no newline at the end"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, l := range lines {
		if l.stream != "stderr" {
			t.Errorf("stream %q, want stderr", l.stream)
		}
		if l.ts.Before(before.Truncate(time.Nanosecond)) || l.ts.After(time.Now()) {
			t.Errorf("timestamp %v not between the test's start and now", l.ts)
		}
	}
	if lines := logOf(t, Stdout, 0); len(lines) != 0 {
		t.Errorf("no input made lines: %v", lines)
	}
}

func TestCRILoggerSplitsLongLines(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chunks []string
		want   string
	}{
		{"shorter", []string{"abcd\n"}, "F:abcd"},
		{"exactly maxLen", []string{"abcde\n"}, "F:abcde"},
		{"one more", []string{"abcdef\n"}, "P:abcde|F:f"},
		{"twice maxLen", []string{"abcdefghij\n"}, "P:abcde|F:fghij"},
		{"long, in bytes", strings.Split("abcdefghijkl\nxy\n", ""), "P:abcde|P:fghij|F:kl|F:xy"},
		{"long without newline", []string{"abcdefghijkl"}, "P:abcde|P:fghij|P:kl"},
		{"cr kept with its newline", []string{"abcde\r", "\nz\n"}, "F:abcde|F:z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tagsAndContent(logOf(t, Stdout, 5, tc.chunks...)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	// A line much longer than the read buffer, with no limit, stays whole.
	long := strings.Repeat("x", 3*readSize+7)
	if got := tagsAndContent(logOf(t, Stdout, 0, long+"\n")); got != "F:"+long {
		t.Errorf("long line without limit split: %d bytes", len(got))
	}
}

func TestLoggersShareOneFileWithoutTornLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pod", "ctr", "0.log")
	stdout, stderr, err := NewLoggers(path, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("log file mode %v, want 0640", fi.Mode().Perm())
	}
	const n = 300
	// Long lines written in pieces, so that the two loggers' work
	// overlaps in time.
	pad := strings.Repeat("p", 6000)
	var wg sync.WaitGroup
	for _, s := range []struct {
		w    interface{ Write([]byte) (int, error) }
		name string
	}{{stdout, "stdout"}, {stderr, "stderr"}} {
		wg.Go(func() {
			for i := range n {
				line := fmt.Sprintf("%s-%d-%s\n", s.name, i, pad)
				for len(line) > 0 {
					k := min(len(line), 1000)
					if _, err := s.w.Write([]byte(line[:k])); err != nil {
						t.Error(err)
						return
					}
					line = line[k:]
				}
			}
		})
	}
	wg.Wait()
	// Close returns once the lines are in the file.
	stdout.Close()
	stderr.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]int{}
	for _, l := range parseLog(t, string(b)) {
		want := fmt.Sprintf("%s-%d-%s", l.stream, next[l.stream], pad)
		if l.tag != "F" || l.content != want {
			t.Fatalf("line %d of %s torn or out of order: tag %s, %.40q...", next[l.stream], l.stream, l.tag, l.content)
		}
		next[l.stream]++
	}
	if next["stdout"] != n || next["stderr"] != n {
		t.Errorf("got %v lines, want %d of each", next, n)
	}

	// Opening again appends.
	stdout, _, err = NewLoggers(path, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	stdout.Write([]byte("again\n"))
	stdout.Close()
	b, _ = os.ReadFile(path)
	lines := parseLog(t, string(b))
	if len(lines) != 2*n+1 || lines[2*n].content != "again" {
		t.Errorf("after reopening: %d lines, want %d ending with the new one", len(lines), 2*n+1)
	}
}

func TestOpenLogRefusesSymlinks(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "host-file")
	os.WriteFile(target, nil, 0o600)
	link := filepath.Join(dir, "0.log")
	os.Symlink(target, link)
	if w, err := OpenLog(link); err == nil {
		w.Close()
		t.Fatal("opened a log file through a symlink")
	}
}
