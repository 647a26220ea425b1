package v2

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/log"
)

// maxLogLine bounds one line of a shim's log; longer lines are split.
const maxLogLine = 64 << 10

// copyShimLog makes the bundle's log fifo, which the shim opens for its
// logs, and copies each line into the daemon's log until the returned
// closer is called. The fifo is opened read-write: the open does not wait
// for a writer, and reads never see end of file while the shim is away.
// The fifo must be read at all times, or a shim with a full pipe blocks.
func copyShimLog(ctx context.Context, b *bundle) (io.Closer, error) {
	path := b.file(logFifo)
	if err := unix.Mkfifo(path, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create shim log fifo: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open shim log fifo: %w", err)
	}
	logger := log.G(ctx).WithFields(logrus.Fields{"id": b.id, "namespace": b.namespace})
	go func() {
		r := bufio.NewReaderSize(f, maxLogLine)
		for {
			line, err := r.ReadSlice('\n')
			if len(line) > 0 {
				logShimLine(logger, strings.TrimRight(string(line), "\n"))
			}
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				if !errors.Is(err, os.ErrClosed) {
					logger.WithError(err).Error("read shim log")
				}
				return
			}
		}
	}()
	return f, nil
}

// logShimLine logs one line the shim wrote. A logrus text line (key=value
// pairs, values quoted where needed) is logged at the shim's level with its
// message and fields, less its own time, which would only repeat the
// daemon's; anything else, a panic's stack say, is logged as it is.
func logShimLine(logger *logrus.Entry, line string) {
	pairs, ok := splitLogfmt(line)
	if !ok {
		logger.Info(line)
		return
	}
	level := logrus.InfoLevel
	var msg string
	fields := make(logrus.Fields, len(pairs))
	for _, kv := range pairs {
		switch kv[0] {
		case "time":
		case "level":
			if l, err := logrus.ParseLevel(kv[1]); err == nil {
				level = l
			}
		case "msg":
			msg = kv[1]
		default:
			fields[kv[0]] = kv[1]
		}
	}
	// Fatal and panic are the shim's, not the daemon's to act on.
	level = max(level, logrus.ErrorLevel)
	logger.WithFields(fields).Log(level, msg)
}

// splitLogfmt splits a line of key=value pairs, where a value is bare or a
// Go-quoted string. ok is false for a line that is not one.
func splitLogfmt(line string) (pairs [][2]string, ok bool) {
	for line = strings.TrimLeft(line, " "); line != ""; line = strings.TrimLeft(line, " ") {
		eq := strings.IndexByte(line, '=')
		if eq <= 0 || strings.ContainsAny(line[:eq], " \"\t") {
			return nil, false
		}
		key, rest := line[:eq], line[eq+1:]
		var value string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, false
			}
			if value, err = strconv.Unquote(q); err != nil {
				return nil, false
			}
			rest = rest[len(q):]
		} else {
			end := strings.IndexByte(rest, ' ')
			if end < 0 {
				end = len(rest)
			}
			value, rest = rest[:end], rest[end:]
		}
		if rest != "" && rest[0] != ' ' {
			return nil, false
		}
		pairs = append(pairs, [2]string{key, value})
		line = rest
	}
	return pairs, len(pairs) > 0
}
