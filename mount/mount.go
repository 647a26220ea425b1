// Package mount describes filesystem mounts as snapshotters hand them out
// and mounts them: a snapshot's filesystem is a list of mounts applied in
// order onto one target.
package mount

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Mount is one mount(2) call: what to mount, as what, with which options.
type Mount struct {
	// Type is the filesystem type, e.g. "overlay" or "bind".
	Type string
	// Source is the device or directory mounted.
	Source string
	// Target is a path under the mount point, for mounts stacked onto
	// subdirectories; usually empty.
	Target string
	// Options are mount(8)-style options, e.g. "ro", "rbind",
	// "lowerdir=...".
	Options []string
}

// All mounts every mount onto target, in order. If one fails, those
// already mounted are unmounted again.
func All(mounts []Mount, target string) error {
	for i, m := range mounts {
		if err := m.Mount(target); err != nil {
			for j := i - 1; j >= 0; j-- {
				unix.Unmount(joinTarget(target, mounts[j].Target), unix.MNT_DETACH)
			}
			return err
		}
	}
	return nil
}

func joinTarget(root, sub string) string {
	if sub == "" {
		return root
	}
	return strings.TrimSuffix(root, "/") + "/" + strings.TrimPrefix(sub, "/")
}

// Mount mounts m onto target (joined with m.Target).
func (m *Mount) Mount(target string) error {
	target = joinTarget(target, m.Target)
	flags, data, propagation := parseOptions(m.Options)
	typ := m.Type
	if flags&unix.MS_BIND != 0 {
		typ = ""
	}
	var err error
	if typ == "overlay" && len(data) >= pageSize {
		err = mountLongOverlay(m.Source, target, flags&^unix.MS_RDONLY, m.Options)
	} else {
		err = mountRetry(m.Source, target, typ, flags&^unix.MS_RDONLY, data)
	}
	if err != nil {
		return fmt.Errorf("mount %s on %s (type %q, options %q): %w", m.Source, target, m.Type, m.Options, err)
	}
	// A bind mount ignores MS_RDONLY on the first call; it takes a remount.
	if flags&unix.MS_RDONLY != 0 {
		remount := uintptr(unix.MS_REMOUNT | unix.MS_RDONLY)
		if flags&unix.MS_BIND != 0 {
			remount |= unix.MS_BIND
		}
		if err := unix.Mount("", target, "", remount|(flags&(unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)), ""); err != nil {
			unix.Unmount(target, unix.MNT_DETACH)
			return fmt.Errorf("remount %s read-only: %w", target, err)
		}
	}
	if propagation != 0 {
		if err := unix.Mount("", target, "", propagation, ""); err != nil {
			unix.Unmount(target, unix.MNT_DETACH)
			return fmt.Errorf("set propagation of %s: %w", target, err)
		}
	}
	return nil
}

// mountRetry retries EBUSY, which overlay returns briefly after an
// unmount of the same directories.
func mountRetry(source, target, typ string, flags uintptr, data string) error {
	var err error
	for i := 0; i < 5; i++ {
		if err = unix.Mount(source, target, typ, flags, data); !errors.Is(err, unix.EBUSY) {
			return err
		}
		time.Sleep(time.Duration(1<<i) * time.Millisecond)
	}
	return err
}

// flagOptions are the options mount(2) takes as flags; set is false for
// the options that clear a flag.
var flagOptions = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro":          {false, unix.MS_RDONLY},
	"rw":          {true, unix.MS_RDONLY},
	"bind":        {false, unix.MS_BIND},
	"rbind":       {false, unix.MS_BIND | unix.MS_REC},
	"nosuid":      {false, unix.MS_NOSUID},
	"suid":        {true, unix.MS_NOSUID},
	"nodev":       {false, unix.MS_NODEV},
	"dev":         {true, unix.MS_NODEV},
	"noexec":      {false, unix.MS_NOEXEC},
	"exec":        {true, unix.MS_NOEXEC},
	"noatime":     {false, unix.MS_NOATIME},
	"atime":       {true, unix.MS_NOATIME},
	"nodiratime":  {false, unix.MS_NODIRATIME},
	"relatime":    {false, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME},
	"sync":        {false, unix.MS_SYNCHRONOUS},
	"async":       {true, unix.MS_SYNCHRONOUS},
	"remount":     {false, unix.MS_REMOUNT},
	"mand":        {false, unix.MS_MANDLOCK},
	"nomand":      {true, unix.MS_MANDLOCK},
	"dirsync":     {false, unix.MS_DIRSYNC},
	"defaults":    {false, 0},
}

var propagationOptions = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// parseOptions splits options into mount flags, the filesystem's own data
// string, and a propagation change to apply afterwards.
func parseOptions(options []string) (flags uintptr, data string, propagation uintptr) {
	var rest []string
	for _, o := range options {
		if f, ok := flagOptions[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		if p, ok := propagationOptions[o]; ok {
			propagation = p
			continue
		}
		rest = append(rest, o)
	}
	return flags, strings.Join(rest, ","), propagation
}

// Unmount unmounts target, retrying while it is busy. A target that is
// not mounted is not an error.
func Unmount(target string, flags int) error {
	for i := 0; i < 50; i++ {
		err := unix.Unmount(target, flags)
		switch {
		case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EBUSY):
			time.Sleep(10 * time.Millisecond)
			continue
		default:
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
	return fmt.Errorf("unmount %s: %w", target, unix.EBUSY)
}

// UnmountAll unmounts target until nothing is mounted there any more, for
// targets with several mounts stacked on them.
func UnmountAll(target string, flags int) error {
	for i := 0; i < 64; i++ {
		if err := unix.Unmount(target, flags); err != nil {
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
				return nil
			}
			if errors.Is(err, unix.EBUSY) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted", target)
}

// ReadOnly reports whether m is mounted read-only.
func (m *Mount) ReadOnly() bool {
	ro := false
	for _, o := range m.Options {
		switch o {
		case "ro":
			ro = true
		case "rw":
			ro = false
		}
	}
	return ro
}
