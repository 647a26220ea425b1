package server

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/snapshots"
)

// podIDMap is a pod's user namespace: one uid and one gid range, as the
// CRI allows (containerd too).
type podIDMap struct {
	uid, gid *runtime.IDMapping
}

// podUserns returns the id mapping of a pod with a user namespace of its
// own (mode POD, one uid and one gid mapping of length > 0), or nil for
// any other options; those the spec accepts or refuses with its own
// errors.
func podUserns(sbCfg *runtime.PodSandboxConfig) *podIDMap {
	u := sbCfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	if u.GetMode() != runtime.NamespaceMode_POD || len(u.GetUids()) != 1 || len(u.GetGids()) != 1 {
		return nil
	}
	m := &podIDMap{uid: u.GetUids()[0], gid: u.GetGids()[0]}
	if m.uid.GetLength() == 0 || m.gid.GetLength() == 0 {
		return nil
	}
	return m
}

// toHost maps an id of the image (a container id) to the host id the
// mapping gives it.
func toHost(m *runtime.IDMapping, id uint32) (uint32, bool) {
	if id < m.GetContainerId() || uint64(id) >= uint64(m.GetContainerId())+uint64(m.GetLength()) {
		return 0, false
	}
	return m.GetHostId() + (id - m.GetContainerId()), true
}

// remappedKey names the committed snapshot holding image chainID with its
// files owned by the mapping's host ids; pods with the same mapping share
// it.
func (m *podIDMap) remappedKey(chainID string) string {
	f := func(x *runtime.IDMapping) string {
		return strconv.FormatUint(uint64(x.GetContainerId()), 10) + ":" + strconv.FormatUint(uint64(x.GetHostId()), 10) + ":" + strconv.FormatUint(uint64(x.GetLength()), 10)
	}
	return chainID + "-userns-" + f(m.uid) + "-" + f(m.gid)
}

// prepareRootfs prepares the active snapshot key on the image chainID for
// a pod's container (or its pause container). In a pod with a user
// namespace the image's files must belong to the namespace's ids, or its
// root could not even create the mount points in its own root
// filesystem: the layers are then copied once per mapping into a
// committed snapshot whose files are chowned to the host ids (what
// containerd does for snapshotters without idmapped layers), and key is
// prepared on that. ctx must hold a lease, which keeps the remapped
// snapshot until key refers to it.
func prepareRootfs(ctx context.Context, sn snapshots.Snapshotter, key, chainID string, m *podIDMap) ([]mount.Mount, error) {
	if m == nil {
		return sn.Prepare(ctx, key, chainID)
	}
	parent := m.remappedKey(chainID)
	if _, err := sn.Stat(ctx, parent); err != nil {
		if !errdefs.IsNotFound(err) {
			return nil, err
		}
		if err := remapSnapshot(ctx, sn, parent, chainID, m); err != nil {
			return nil, err
		}
	}
	// The snapshotter gives the new layer's root its parent's owner: the
	// namespace's root.
	return sn.Prepare(ctx, key, parent)
}

// remapSnapshot commits name: chainID with every file's owner mapped.
// Two pods racing for the same mapping both remap; the second commit
// finds the first's and uses it.
func remapSnapshot(ctx context.Context, sn snapshots.Snapshotter, name, chainID string, m *podIDMap) error {
	active := name + "-remap-" + newID()[:16]
	mounts, err := sn.Prepare(ctx, active, chainID)
	if err != nil {
		return fmt.Errorf("snapshot to remap %s for a user namespace: %w", chainID, err)
	}
	// After a commit the active key is gone; after a failure it goes.
	defer func() { _ = sn.Remove(context.WithoutCancel(ctx), active) }()
	if err := mount.WithTempMount(ctx, mounts, func(root string) error { return chownTree(root, m) }); err != nil {
		return fmt.Errorf("remapping the files of %s for a user namespace: %w", chainID, err)
	}
	if err := sn.Commit(ctx, name, active); err != nil && !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("committing the remapped snapshot of %s: %w", chainID, err)
	}
	return nil
}

// chownTree gives every file under root the owner and group m maps its
// current ones to. An id outside the mapping could not be owned by
// anyone in the pod: that is an error rather than a file left to the
// host's ids. chown clears setuid and setgid, which are set again.
func chownTree(root string, m *podIDMap) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no owner information", p)
		}
		uid, ok := toHost(m.uid, st.Uid)
		if !ok {
			return fmt.Errorf("%s: owner %d is outside the pod's uid mapping: %w", p, st.Uid, errdefs.ErrFailedPrecondition)
		}
		gid, ok := toHost(m.gid, st.Gid)
		if !ok {
			return fmt.Errorf("%s: group %d is outside the pod's gid mapping: %w", p, st.Gid, errdefs.ErrFailedPrecondition)
		}
		if err := os.Lchown(p, int(uid), int(gid)); err != nil {
			return err
		}
		if mode := info.Mode(); mode&fs.ModeSymlink == 0 && mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			return os.Chmod(p, mode)
		}
		return nil
	})
}
