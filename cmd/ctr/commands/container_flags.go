package commands

import (
	gocontext "context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli"
	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
)

// RuntimeFlags choose the runtime of `ctr run` and `ctr containers
// create`, and runc's settings, as containerd's ctr on Linux.
var RuntimeFlags = []cli.Flag{
	cli.StringFlag{
		Name:  "runtime",
		Usage: "Runtime name or absolute path to runtime binary",
		Value: client.DefaultRuntime,
	},
	cli.StringFlag{
		Name:  "runtime-config-path",
		Usage: "Optional runtime config path",
	},
	cli.StringFlag{
		Name:  "runc-binary",
		Usage: "Specify runc-compatible binary",
	},
	cli.StringFlag{
		Name:  "runc-root",
		Usage: "Specify runc-compatible root",
	},
	cli.BoolFlag{
		Name:  "runc-systemd-cgroup",
		Usage: "Start runc with systemd cgroup manager",
	},
}

// SnapshotterFlag is the --snapshotter of the commands that make or read
// an image's snapshots. Empty, the client resolves it: the namespace's
// containerd.io/defaults/snapshotter label, else overlayfs.
var SnapshotterFlag = cli.StringFlag{
	Name:   "snapshotter",
	Usage:  "Snapshotter name. Empty value stands for the default value.",
	EnvVar: "CONTAINERD_SNAPSHOTTER",
}

// ContainerSnapshotterFlags choose the snapshotter of a new container's
// root filesystem and label its snapshot.
var ContainerSnapshotterFlags = []cli.Flag{
	SnapshotterFlag,
	cli.StringSliceFlag{
		Name:  "snapshotter-label",
		Usage: "Labels added to the new snapshot for this container.",
	},
}

// ContainerFlags describe a new container, as containerd's ctr's.
var ContainerFlags = []cli.Flag{
	cli.StringFlag{
		Name:  "config, c",
		Usage: "Path to the runtime-specific spec config file",
	},
	cli.StringFlag{
		Name:  "cwd",
		Usage: "Specify the working directory of the process",
	},
	cli.StringSliceFlag{
		Name:  "env",
		Usage: "Specify additional container environment variables (e.g. FOO=bar)",
	},
	cli.StringFlag{
		Name:  "env-file",
		Usage: "Specify additional container environment variables in a file(e.g. FOO=bar, one per line)",
	},
	cli.StringSliceFlag{
		Name:  "label",
		Usage: "Specify additional labels (e.g. foo=bar)",
	},
	cli.StringSliceFlag{
		Name:  "annotation",
		Usage: "Specify additional OCI annotations (e.g. foo=bar)",
	},
	cli.StringSliceFlag{
		Name:  "mount",
		Usage: "Specify additional container mount (e.g. type=bind,src=/tmp,dst=/host,options=rbind:ro)",
	},
	cli.BoolFlag{
		Name:  "net-host",
		Usage: "Enable host networking for the container",
	},
	cli.BoolFlag{
		Name:  "privileged",
		Usage: "Run privileged container",
	},
	cli.BoolFlag{
		Name:  "read-only",
		Usage: "Set the containers filesystem as readonly",
	},
	cli.BoolFlag{
		Name:  "tty, t",
		Usage: "Allocate a TTY for the container",
	},
	cli.StringSliceFlag{
		Name:  "with-ns",
		Usage: "Specify existing Linux namespaces to join at container runtime (format '<nstype>:<path>')",
	},
	cli.StringFlag{
		Name:  "pid-file",
		Usage: "File path to write the task's pid",
	},
	cli.BoolFlag{
		Name:  "allow-new-privs",
		Usage: "Turn off OCI spec's NoNewPrivileges feature flag",
	},
	cli.Uint64Flag{
		Name:  "memory-limit",
		Usage: "Memory limit (in bytes) for the container",
	},
	cli.StringSliceFlag{
		Name:  "cap-add",
		Usage: "Add Linux capabilities (Set capabilities with 'CAP_' prefix)",
	},
	cli.StringSliceFlag{
		Name:  "cap-drop",
		Usage: "Drop Linux capabilities (Set capabilities with 'CAP_' prefix)",
	},
	cli.StringFlag{
		Name:  "hostname",
		Usage: "Set the container's host name",
	},
	cli.StringFlag{
		Name:  "user, u",
		Usage: "Username or user id, group optional (format: <name|uid>[:<group|gid>])",
	},
	cli.BoolFlag{
		Name:  "rootfs",
		Usage: "Use custom rootfs that is not managed by containerd snapshotter",
	},
	cli.BoolFlag{
		Name:  "no-pivot",
		Usage: "Disable use of pivot-root (linux only)",
	},
	cli.Int64Flag{
		Name:  "cpu-quota",
		Usage: "Limit CPU CFS quota",
		Value: -1,
	},
	cli.Uint64Flag{
		Name:  "cpu-period",
		Usage: "Limit CPU CFS period",
	},
	cli.Float64Flag{
		Name:  "cpus",
		Usage: "Set the CFS cpu quota",
	},
	cli.IntFlag{
		Name:  "cpu-shares",
		Usage: "Set the cpu shares",
		Value: 1024,
	},
	cli.StringFlag{
		Name:  "cgroup",
		Usage: "Cgroup path (To disable use of cgroup, set to \"\" explicitly)",
	},
	cli.StringFlag{
		Name:  "cpuset-cpus",
		Usage: "Set the CPUs the container will run in (e.g., 1-2,4)",
	},
	cli.StringFlag{
		Name:  "cpuset-mems",
		Usage: "Set the memory nodes the container will run in (e.g., 1-2,4)",
	},
	cli.StringFlag{
		Name:  "rlimit-nofile",
		Usage: "Set RLIMIT_NOFILE (soft:hard)",
	},
	cli.StringSliceFlag{
		Name:  "device",
		Usage: "File path to a device to add to the container; or a path to a directory tree of devices to add to the container",
	},
	cli.BoolFlag{
		Name:  "privileged-without-host-devices",
		Usage: "Don't pass all host devices to privileged container",
	},
	cli.StringFlag{
		Name:  "rootfs-propagation",
		Usage: "Set the propagation of the container rootfs",
	},
}

// ForwardAllSignals sends every signal ctr receives to the task (or
// process), until StopCatch; SIGURG, which Go's runtime uses to preempt
// goroutines, is not the user's and stays here.
func ForwardAllSignals(ctx gocontext.Context, task interface {
	Kill(gocontext.Context, syscall.Signal, ...client.KillOpts) error
}) chan os.Signal {
	sigc := make(chan os.Signal, 128)
	signal.Notify(sigc)
	go func() {
		for s := range sigc {
			sig, ok := s.(syscall.Signal)
			if !ok || sig == unix.SIGURG {
				continue
			}
			if err := task.Kill(ctx, sig); err != nil {
				if errdefs.IsNotFound(err) {
					// The process is gone; nothing more to forward.
					return
				}
				log.GetLogger(ctx).WithError(err).Errorf("forward signal %s", sig)
			}
		}
	}()
	return sigc
}

// StopCatch stops forwarding signals to the channel and closes it.
func StopCatch(sigc chan os.Signal) {
	signal.Stop(sigc)
	close(sigc)
}

// WritePidFile writes pid to path atomically (a rename of a full file),
// so a reader never sees a partial pid.
func WritePidFile(path string, pid int) error {
	path, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(tmp, "%d", pid)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o666)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
