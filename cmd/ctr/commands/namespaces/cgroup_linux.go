package namespaces

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// cgroupRoot is where the cgroup hierarchies are mounted.
var cgroupRoot = "/sys/fs/cgroup"

// deleteCgroup removes the cgroup the runtime made for the namespace's
// tasks (/<namespace> in each hierarchy), as `namespaces rm --cgroup`
// does in containerd: from ctr's side, so it needs ctr on the daemon's
// host. The directory goes with rmdir, which the kernel refuses while
// the cgroup has processes or children; a cgroup that is not there is
// not an error.
func deleteCgroup(namespace string) error {
	// Unified: the namespace's directory is right under the root. v1:
	// one in each controller's hierarchy.
	dirs := []string{filepath.Join(cgroupRoot, namespace)}
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err != nil {
		hierarchies, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", namespace))
		dirs = hierarchies
	}
	for _, dir := range dirs {
		// rmdir, not remove: a namespace named like a control file
		// ("cgroup.procs") must not unlink it.
		if err := unix.Rmdir(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("delete cgroup of namespace %s: %w", namespace, err)
		}
	}
	return nil
}
