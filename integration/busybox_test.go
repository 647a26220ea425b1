//go:build integration

package integration

import (
	"path/filepath"
	"testing"

	"github.com/llitfkitfk/containerd/internal/testimage"
)

// buildBusyboxArchive writes an OCI image-layout tar to dir holding the
// image name: one layer with the host's static busybox, its applets and
// the directories a container's mounts go on, for this machine's platform
// so that ctr picks it (see testimage.WriteBusybox).
func buildBusyboxArchive(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, "busybox.tar")
	if err := testimage.WriteBusybox(path, name); err != nil {
		t.Fatal(err)
	}
	return path
}
