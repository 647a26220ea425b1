package v2

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/identifiers"
	"github.com/llitfkitfk/containerd/mount"
)

// Files in a bundle besides the OCI config.json and rootfs/. The shim
// writes "address" (its socket; 1.x shims do, the daemon does for others),
// "bootstrap.json" is the shim's endpoint as containerd 2.x keeps it,
// "log" is the fifo the shim logs to, and
// "shim-binary-path" records which shim to run for cleanup after a
// restart, so that nothing outside the bundle is needed to recover it.
const (
	configFile     = "config.json"
	addressFile    = "address"
	bootstrapFile  = "bootstrap.json"
	logFifo        = "log"
	shimBinaryFile = "shim-binary-path"
)

// bundle is a task's OCI bundle, <state>/<ns>/<id>, which lives in tmpfs
// and goes with a reboot, and its work directory <root>/<ns>/<id>, which
// persists and is linked from the bundle as "work".
type bundle struct {
	id        string
	namespace string
	path      string
	work      string
}

func bundlePaths(root, state, ns, id string) *bundle {
	return &bundle{
		id:        id,
		namespace: ns,
		path:      filepath.Join(state, ns, id),
		work:      filepath.Join(root, ns, id),
	}
}

// newBundle creates the bundle for id with spec as its config.json. The
// namespace and id become path components, so both are validated here.
func newBundle(root, state, ns, id string, spec []byte) (_ *bundle, err error) {
	if err := identifiers.Validate(ns); err != nil {
		return nil, fmt.Errorf("invalid namespace: %w", err)
	}
	if err := identifiers.Validate(id); err != nil {
		return nil, fmt.Errorf("invalid task id: %w", err)
	}
	b := bundlePaths(root, state, ns, id)
	if err := os.MkdirAll(filepath.Dir(b.path), 0o711); err != nil {
		return nil, fmt.Errorf("create bundle parent: %w", err)
	}
	if err := os.Mkdir(b.path, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("bundle for task %s: %w", id, errdefs.ErrAlreadyExists)
		}
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	defer func() {
		if err != nil {
			b.delete()
		}
	}()
	if err := os.Mkdir(filepath.Join(b.path, "rootfs"), 0o711); err != nil {
		return nil, fmt.Errorf("create bundle rootfs: %w", err)
	}
	if err := openBundleToUserns(b.path, spec); err != nil {
		return nil, fmt.Errorf("bundle for a user namespace: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(b.work), 0o711); err != nil {
		return nil, fmt.Errorf("create work parent: %w", err)
	}
	// A work directory left from a task of the same id whose bundle went
	// with a reboot is stale; the new task starts with an empty one.
	if err := os.RemoveAll(b.work); err != nil {
		return nil, fmt.Errorf("remove stale work dir: %w", err)
	}
	if err := os.Mkdir(b.work, 0o711); err != nil {
		return nil, fmt.Errorf("create work dir: %w", err)
	}
	if err := os.Symlink(b.work, filepath.Join(b.path, "work")); err != nil {
		return nil, fmt.Errorf("link work dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(b.path, configFile), spec, 0o666); err != nil {
		return nil, fmt.Errorf("write spec: %w", err)
	}
	return b, nil
}

// openBundleToUserns lets a container in a user namespace reach its
// rootfs: the runtime sets the rootfs up as the namespace's root, which is
// the host gid that container gid 0 maps to, so the bundle is group owned
// by that gid and searchable by it (0o710) rather than private to host
// root. Without mappings the bundle stays 0o700.
func openBundleToUserns(path string, spec []byte) error {
	var s struct {
		Linux *struct {
			GIDMappings []struct {
				ContainerID uint32 `json:"containerID"`
				HostID      uint32 `json:"hostID"`
			} `json:"gidMappings"`
		} `json:"linux"`
	}
	if len(spec) == 0 {
		return nil
	}
	if err := json.Unmarshal(spec, &s); err != nil {
		return fmt.Errorf("parse spec: %w", err)
	}
	if s.Linux == nil {
		return nil
	}
	for _, m := range s.Linux.GIDMappings {
		if m.ContainerID == 0 && m.HostID != 0 {
			if err := os.Chown(path, -1, int(m.HostID)); err != nil {
				return err
			}
			return os.Chmod(path, 0o710)
		}
	}
	return nil
}

// file returns the path of name in the bundle.
func (b *bundle) file(name string) string { return filepath.Join(b.path, name) }

// delete removes the bundle and the work directory.
func (b *bundle) delete() error {
	retired, err := b.retire()
	if rerr := removeRetired(retired); err == nil {
		err = rerr
	}
	return err
}

// retire takes the bundle and the work directory out of use: the rootfs is
// unmounted and removed, with os.Remove, which fails rather than delete
// the contents of a filesystem still mounted there; then both directories
// are renamed to hidden names, which a restart removes should the daemon
// die before removeRetired has. It returns the hidden paths.
func (b *bundle) retire() ([]string, error) {
	rootfs := b.file("rootfs")
	if err := mount.UnmountAll(rootfs, 0); err != nil {
		return nil, fmt.Errorf("unmount bundle rootfs: %w", err)
	}
	if err := os.Remove(rootfs); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove bundle rootfs: %w", err)
	}
	var retired []string
	for _, path := range []string{b.path, b.work} {
		hidden, err := hide(path)
		if err != nil {
			return retired, err
		}
		if hidden != "" {
			retired = append(retired, hidden)
		}
	}
	return retired, nil
}

// hide renames path to a hidden name of its own in the same directory, so
// that the name is free at once and a task of the same id may follow
// while the old tree is still being removed. It returns "" if path does
// not exist.
func hide(path string) (string, error) {
	dir, base := filepath.Split(path)
	for {
		hidden := filepath.Join(dir, "."+base+"."+strconv.FormatUint(rand.Uint64(), 36))
		err := os.Rename(path, hidden)
		switch {
		case err == nil:
			return hidden, nil
		case errors.Is(err, os.ErrNotExist):
			return "", nil
		case errors.Is(err, os.ErrExist), errors.Is(err, syscall.ENOTEMPTY):
			continue // taken; draw again
		}
		return "", fmt.Errorf("delete %s: %w", path, err)
	}
}

// removeRetired removes what retire hid.
func removeRetired(paths []string) error {
	var errs []error
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
