package nri

import (
	"context"
	"errors"

	"github.com/containerd/nri/pkg/adaptation"
	nrilog "github.com/containerd/nri/pkg/log"
	"github.com/sirupsen/logrus"

	"github.com/llitfkitfk/containerd/log"
)

// The NRI library logs through the daemon's logger, tagged with this
// plugin's module.
func init() { nrilog.Set(logger{}) }

type logger struct{}

func (logger) entry(ctx context.Context) *logrus.Entry {
	if ctx == nil {
		ctx = context.Background()
	}
	if log.GetModulePath(ctx) == "" {
		// The library mostly logs with a bare context.
		ctx = log.WithModule(ctx, "containerd")
	}
	return log.G(log.WithModule(ctx, "nri"))
}

func (l logger) Debugf(ctx context.Context, format string, args ...any) {
	l.entry(ctx).Debugf(format, args...)
}

func (l logger) Infof(ctx context.Context, format string, args ...any) {
	l.entry(ctx).Infof(format, args...)
}

func (l logger) Warnf(ctx context.Context, format string, args ...any) {
	l.entry(ctx).Warnf(format, args...)
}

// Errorf logs at error level, but for the library's report that WASM
// plugins are not built in: the daemon leaves them out on purpose
// (nri_no_wasm), and the library says so as an error at every start.
func (l logger) Errorf(ctx context.Context, format string, args ...any) {
	if wasmDisabled(args) {
		l.entry(ctx).Debugf(format, args...)
		return
	}
	l.entry(ctx).Errorf(format, args...)
}

func wasmDisabled(args []any) bool {
	for _, a := range args {
		if err, ok := a.(error); ok && errors.Is(err, adaptation.ErrWasmDisabled) {
			return true
		}
	}
	return false
}
