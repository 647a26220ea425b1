package log

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

func TestWithModuleNests(t *testing.T) {
	ctx := WithModule(context.Background(), "containerd")
	ctx = WithModule(ctx, "tasks")
	if got := GetModulePath(ctx); got != "containerd/tasks" {
		t.Fatalf("module path = %q, want containerd/tasks", got)
	}
	// The same module twice in a row is not nested again.
	if got := GetModulePath(WithModule(ctx, "tasks")); got != "containerd/tasks" {
		t.Fatalf("repeated module path = %q", got)
	}
}

func TestModuleFieldIsLogged(t *testing.T) {
	var buf bytes.Buffer
	logger := logrus.New()
	logger.SetOutput(&buf)
	logger.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
	ctx := WithLogger(context.Background(), logrus.NewEntry(logger))
	ctx = WithModule(WithModule(ctx, "containerd"), "version")
	G(ctx).Info("hello")
	if !strings.Contains(buf.String(), "module=containerd/version") {
		t.Fatalf("log line %q lacks the module", buf.String())
	}
}

func TestSetLevelAndFormat(t *testing.T) {
	defer logrus.SetLevel(logrus.GetLevel())
	if err := SetLevel("debug"); err != nil || logrus.GetLevel() != logrus.DebugLevel {
		t.Fatalf("SetLevel(debug): %v, level %v", err, logrus.GetLevel())
	}
	if err := SetLevel("loud"); err == nil {
		t.Fatal("SetLevel accepted an unknown level")
	}
	if err := SetFormat("xml"); err == nil {
		t.Fatal("SetFormat accepted xml")
	}
	if err := SetFormat(JSONFormat); err != nil {
		t.Fatal(err)
	}
	SetFormat(TextFormat)
}
