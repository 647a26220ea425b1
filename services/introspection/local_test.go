package introspection

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
)

func newLocal(root string) *Local {
	r := &plugin.Registration{Type: plugin.ServicePlugin, ID: services.IntrospectionService}
	return NewLocal(plugin.NewContext(context.Background(), r, plugin.NewPluginSet(), root, root+"-state"))
}

// The identity is kept where containerd 2.x keeps it, <root>/uuid, and
// stays the same across restarts.
func TestServerUUID(t *testing.T) {
	root := t.TempDir()
	info, err := newLocal(root).Server(context.Background())
	if err != nil || info.UUID == "" || info.PID != os.Getpid() {
		t.Fatalf("server %+v, %v", info, err)
	}
	b, err := os.ReadFile(filepath.Join(root, "uuid"))
	if err != nil || strings.TrimSpace(string(b)) != info.UUID {
		t.Fatalf("<root>/uuid holds %q (%v), want %q", b, err, info.UUID)
	}
	again, err := newLocal(root).Server(context.Background())
	if err != nil || again.UUID != info.UUID {
		t.Fatalf("after a restart %q (%v), want %q", again.UUID, err, info.UUID)
	}
}

// A daemon that kept its identity in the introspection gRPC plugin's
// directory, as this one did before the local service, keeps it; a torn
// file gets a new one.
func TestServerUUIDCarriedOver(t *testing.T) {
	root := t.TempDir()
	const old = "6c8a4f3e-1b2d-4e5f-8a9b-0c1d2e3f4a5b"
	dir := filepath.Join(root, "io.containerd.grpc.v1.introspection")
	os.MkdirAll(dir, 0o711)
	if err := os.WriteFile(filepath.Join(dir, "uuid"), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if info, err := newLocal(root).Server(context.Background()); err != nil || info.UUID != old {
		t.Fatalf("uuid %q (%v), want the one kept before, %q", info.UUID, err, old)
	}

	torn := t.TempDir()
	os.WriteFile(filepath.Join(torn, "uuid"), []byte("6c8a4f3e-1b2d"), 0o644)
	if info, err := newLocal(torn).Server(context.Background()); err != nil || len(info.UUID) != len(old) {
		t.Fatalf("uuid after a torn file %q (%v)", info.UUID, err)
	}
}
