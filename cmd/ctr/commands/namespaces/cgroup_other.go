//go:build !linux

package namespaces

import (
	"fmt"

	"github.com/llitfkitfk/containerd/errdefs"
)

func deleteCgroup(namespace string) error {
	return fmt.Errorf("delete cgroup of namespace %s: %w", namespace, errdefs.ErrNotImplemented)
}
