package v2

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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

// logShimLine logs one line the shim wrote, a logrus text line, at the
// shim's level and without the shim's own timestamp and level, which would
// only repeat what the daemon's logger adds.
func logShimLine(logger *logrus.Entry, line string) {
	level := logrus.InfoLevel
	var rest []string
	for _, field := range strings.SplitN(line, " ", 3) {
		switch {
		case strings.HasPrefix(field, "time="):
		case strings.HasPrefix(field, "level="):
			if l, err := logrus.ParseLevel(strings.TrimPrefix(field, "level=")); err == nil {
				level = l
			}
		default:
			rest = append(rest, field)
		}
	}
	// Fatal and panic are the shim's, not the daemon's to act on.
	level = max(level, logrus.ErrorLevel)
	logger.Log(level, strings.Join(rest, " "))
}
