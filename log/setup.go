package log

import (
	"fmt"
	"io"

	"github.com/sirupsen/logrus"
)

// Formats the daemon can log in.
const (
	TextFormat = "text"
	JSONFormat = "json"
)

// SetLevel sets the level of the standard logger from its name ("debug",
// "info", ...). An empty name leaves the level alone.
func SetLevel(level string) error {
	if level == "" {
		return nil
	}
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	logrus.SetLevel(lvl)
	return nil
}

// SetFormat chooses text or JSON output; "" means text.
func SetFormat(format string) error {
	switch format {
	case "", TextFormat:
		logrus.SetFormatter(&logrus.TextFormatter{
			TimestampFormat: RFC3339NanoFixed,
			FullTimestamp:   true,
		})
	case JSONFormat:
		logrus.SetFormatter(&logrus.JSONFormatter{TimestampFormat: RFC3339NanoFixed})
	default:
		return fmt.Errorf("unknown log format %q (want %q or %q)", format, TextFormat, JSONFormat)
	}
	return nil
}

// SetOutput sends the standard logger's output to w.
func SetOutput(w io.Writer) { logrus.SetOutput(w) }
