// Package log gives every part of the daemon one logger, carried in the
// context so that fields added by a caller (the module, a request's method)
// stay on everything logged below it.
package log

import (
	"context"
	"path"

	"github.com/sirupsen/logrus"
)

// G is the usual short name for GetLogger.
var G = GetLogger

// L is the logger used when a context carries none.
var L = logrus.NewEntry(logrus.StandardLogger())

type (
	loggerKey struct{}
	moduleKey struct{}
)

// RFC3339NanoFixed keeps timestamps the same width, so logs line up.
const RFC3339NanoFixed = "2006-01-02T15:04:05.000000000Z07:00"

// WithLogger returns a context that carries logger.
func WithLogger(ctx context.Context, logger *logrus.Entry) context.Context {
	return context.WithValue(ctx, loggerKey{}, logger)
}

// GetLogger returns the context's logger, or L when it has none, tagged
// with the context's module path.
func GetLogger(ctx context.Context) *logrus.Entry {
	logger, ok := ctx.Value(loggerKey{}).(*logrus.Entry)
	if !ok {
		logger = L.WithContext(ctx)
	}
	if module := GetModulePath(ctx); module != "" && logger.Data["module"] != module {
		logger = logger.WithField("module", module)
	}
	return logger
}

// WithModule nests module under the context's module path ("containerd" then
// "tasks" gives "containerd/tasks"); the logger shows it as the "module"
// field. Naming the module the context is already in changes nothing, so a
// request passing through the same layer twice is not tagged twice.
//
// Only the path is stored: the tagged logger is made when something logs,
// which keeps tagging every gRPC call cheap.
func WithModule(ctx context.Context, module string) context.Context {
	parent := GetModulePath(ctx)
	if parent != "" {
		if path.Base(parent) == module {
			return ctx
		}
		module = parent + "/" + module
	}
	return context.WithValue(ctx, moduleKey{}, module)
}

// GetModulePath returns the module path of ctx, or "" at the top.
func GetModulePath(ctx context.Context) string {
	module, _ := ctx.Value(moduleKey{}).(string)
	return module
}
