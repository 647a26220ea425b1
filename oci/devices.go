package oci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/containers"
)

// ErrNotADevice is returned for a path that is not a device node.
var ErrNotADevice = errors.New("not a device node")

// DeviceFromPath describes the device node at path (not following a
// symbolic link).
func DeviceFromPath(path string) (*specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		typ = "b"
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFIFO:
		typ = "p"
	default:
		return nil, fmt.Errorf("%s: %w", path, ErrNotADevice)
	}
	rdev := uint64(st.Rdev) //nolint:unconvert // 32 bits on some platforms
	mode := os.FileMode(st.Mode &^ unix.S_IFMT)
	uid, gid := st.Uid, st.Gid
	return &specs.LinuxDevice{
		Type:     typ,
		Path:     path,
		Major:    int64(unix.Major(rdev)),
		Minor:    int64(unix.Minor(rdev)),
		FileMode: &mode,
		UID:      &uid,
		GID:      &gid,
	}, nil
}

// HostDevices lists the device nodes under the host's /dev.
func HostDevices() ([]specs.LinuxDevice, error) {
	return devicesUnder("/dev", "")
}

// devicesUnder lists the devices at path (one node, or every node under a
// directory), renamed under containerPath if that is set. Directories of
// pseudo filesystems the container gets its own of, and fifos, are
// skipped.
func devicesUnder(path, containerPath string) ([]specs.LinuxDevice, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("device path: %w", err)
	}
	if !fi.IsDir() {
		d, err := DeviceFromPath(path)
		if err != nil {
			return nil, err
		}
		if containerPath != "" {
			d.Path = containerPath
		}
		return []specs.LinuxDevice{*d}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var out []specs.LinuxDevice
	for _, e := range entries {
		name := e.Name()
		cp := ""
		if containerPath != "" {
			cp = filepath.Join(containerPath, name)
		}
		if e.IsDir() {
			switch name {
			case "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev":
				continue
			}
			sub, err := devicesUnder(filepath.Join(path, name), cp)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		}
		if name == "console" {
			continue
		}
		d, err := DeviceFromPath(filepath.Join(path, name))
		if err != nil {
			if errors.Is(err, ErrNotADevice) || errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, err
		}
		if d.Type == "p" {
			continue
		}
		if cp != "" {
			d.Path = cp
		}
		out = append(out, *d)
	}
	return out, nil
}

// addDevices adds devs to the spec's devices, skipping any whose path is
// there already (so that --privileged with --device, or WithPrivileged
// with WithHostDevices, do not list a node twice).
func addDevices(s *Spec, devs []specs.LinuxDevice) []specs.LinuxDevice {
	setLinux(s)
	have := make(map[string]bool, len(s.Linux.Devices))
	for _, d := range s.Linux.Devices {
		have[d.Path] = true
	}
	var added []specs.LinuxDevice
	for _, d := range devs {
		if have[d.Path] {
			continue
		}
		have[d.Path] = true
		s.Linux.Devices = append(s.Linux.Devices, d)
		added = append(added, d)
	}
	return added
}

// WithHostDevices gives the container every device node of the host's
// /dev (access to them needs WithAllDevicesAllowed or cgroup rules).
func WithHostDevices(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
	devs, err := HostDevices()
	if err != nil {
		return err
	}
	addDevices(s, devs)
	return nil
}

// WithDevices gives the container the device at devicePath (or every one
// under it, if a directory), at containerPath ("" for the same path), with
// cgroup access permissions ("rwm").
func WithDevices(devicePath, containerPath, permissions string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		devs, err := devicesUnder(devicePath, containerPath)
		if err != nil {
			return err
		}
		allowDevices(s, addDevices(s, devs), permissions)
		return nil
	}
}

// WithLinuxDevice gives the container the device node at path, with
// cgroup access permissions ("rwm").
func WithLinuxDevice(path, permissions string) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		d, err := DeviceFromPath(path)
		if err != nil {
			return err
		}
		allowDevices(s, addDevices(s, []specs.LinuxDevice{*d}), permissions)
		return nil
	}
}

// WithLinuxDevices adds devices to the spec as they are.
func WithLinuxDevices(devices []specs.LinuxDevice) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setLinux(s)
		s.Linux.Devices = append(s.Linux.Devices, devices...)
		return nil
	}
}

func allowDevices(s *Spec, devs []specs.LinuxDevice, permissions string) {
	setResources(s)
	for _, d := range devs {
		major, minor := d.Major, d.Minor
		s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
			Allow:  true,
			Type:   d.Type,
			Major:  &major,
			Minor:  &minor,
			Access: permissions,
		})
	}
}

// WithAllDevicesAllowed lets the container read, write and create every
// device node.
func WithAllDevicesAllowed(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
	setResources(s)
	s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: rwm}}
	return nil
}

// WithParentCgroupDevices leaves device access to the container's parent
// cgroup.
func WithParentCgroupDevices(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
	setResources(s)
	s.Linux.Resources.Devices = nil
	return nil
}

// WithDefaultUnixDevices allows the usual devices (null, zero, full,
// random, urandom, tty, console, ptmx and the pts).
func WithDefaultUnixDevices(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
	setResources(s)
	allow := func(major, minor int64) specs.LinuxDeviceCgroup {
		r := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Access: rwm}
		if minor >= 0 {
			r.Minor = &minor
		}
		return r
	}
	s.Linux.Resources.Devices = append(s.Linux.Resources.Devices,
		allow(1, 3),    // /dev/null
		allow(1, 8),    // /dev/random
		allow(1, 7),    // /dev/full
		allow(5, 0),    // /dev/tty
		allow(1, 5),    // /dev/zero
		allow(1, 9),    // /dev/urandom
		allow(5, 1),    // /dev/console
		allow(136, -1), // /dev/pts/*
		allow(5, 2),    // /dev/ptmx
	)
	return nil
}
