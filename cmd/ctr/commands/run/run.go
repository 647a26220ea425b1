// Package run is `ctr run`: create a container from an image and run its
// task, and the container creation `ctr containers create` shares.
package run

import (
	gocontext "context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/console"
	"github.com/containerd/platforms"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/api/types/runc/options"
	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands/tasks"
	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/oci"
	"github.com/llitfkitfk/containerd/snapshots"
)

// CreateFlags are the flags that describe a new container: `ctr
// containers create`'s, and `ctr run`'s beside its own.
var CreateFlags = append(append(append([]cli.Flag{
	cli.StringFlag{
		Name:  "platform",
		Usage: "Run image for specific platform",
	},
}, commands.RuntimeFlags...), commands.ContainerSnapshotterFlags...), commands.ContainerFlags...)

// Command is `ctr run`.
var Command = cli.Command{
	Name:      "run",
	Usage:     "Run a container",
	ArgsUsage: "[flags] Image|RootFS ID [COMMAND] [ARG...]",
	// The command's own flags (sh -c) are not ctr's.
	SkipArgReorder: true,
	Flags: append(append([]cli.Flag{
		cli.BoolFlag{
			Name:  "rm",
			Usage: "Remove the container after running, cannot be used with --detach",
		},
		cli.BoolFlag{
			Name:  "detach, d",
			Usage: "Detach from the task after it has started execution, cannot be used with --rm",
		},
		cli.StringFlag{
			Name:  "dump-config",
			Usage: "Dump the generated OCI config to a file",
		},
	}, tasks.StartFlags...), CreateFlags...),
	Action: func(context *cli.Context) error {
		id, _, _, err := createArgs(context)
		if err != nil {
			return err
		}
		rm, detach, tty := context.Bool("rm"), context.Bool("detach"), context.Bool("tty")
		if rm && detach {
			return errors.New("flags --detach and --rm cannot be specified together")
		}
		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()
		container, err := NewContainer(ctx, c, context)
		if err != nil {
			return err
		}
		if rm {
			// Runs after the task's deletion, deferred below.
			defer func() {
				if err := container.Delete(ctx, client.WithSnapshotCleanup); err != nil {
					log.GetLogger(ctx).WithError(err).Errorf("failed to cleanup container %s", id)
				}
			}()
		}
		if context.IsSet("dump-config") {
			if err := dumpConfig(ctx, container, context.String("dump-config")); err != nil {
				return err
			}
		}
		var con console.Console
		if tty {
			var err error
			if con, err = tasks.RawConsole(); err != nil {
				return err
			}
			defer con.Reset()
		}
		task, err := tasks.NewTask(ctx, container, tasks.IOOptionsOf(context, con), tasks.NewTaskOpts(context)...)
		if err != nil {
			return err
		}
		return tasks.RunTask(ctx, context, task, con)
	},
}

// createArgs reads the image, id and command of `run` and `containers
// create`; with --config the spec file replaces the image and command.
func createArgs(context *cli.Context) (id, ref string, args []string, err error) {
	a := context.Args()
	if context.IsSet("config") {
		if len(a) > 1 {
			return "", "", nil, errors.New("with spec config file, only container id should be provided")
		}
		id = a.First()
	} else {
		ref = a.First()
		if ref == "" {
			return "", "", nil, errors.New("image ref must be provided")
		}
		id = a.Get(1)
		if len(a) > 2 {
			args = a[2:]
			if args[0] == "--" {
				args = args[1:]
			}
		}
	}
	if id == "" {
		return "", "", nil, errIDMissing
	}
	return id, ref, args, nil
}

// RuntimeOptions are the runtime options of the runtime flags: runc's
// for io.containerd.runc.v2.
func RuntimeOptions(context *cli.Context) (interface{}, error) {
	runtime := context.String("runtime")
	runcFlags := context.String("runc-binary") != "" || context.String("runc-root") != "" || context.Bool("runc-systemd-cgroup")
	if runtime != client.DefaultRuntime {
		if runcFlags {
			return nil, fmt.Errorf("specifying runc-binary, runc-root and runc-systemd-cgroup is only supported for %q runtime", client.DefaultRuntime)
		}
		if path := context.String("runtime-config-path"); path != "" {
			return runtimeConfigOptions(path), nil
		}
		return nil, nil
	}
	if !runcFlags {
		return nil, nil
	}
	o := &options.Options{BinaryName: context.String("runc-binary"), Root: context.String("runc-root")}
	if context.Bool("runc-systemd-cgroup") {
		if context.String("cgroup") == "" {
			// runc maps "machine.slice:foo:deadbeef" to "/machine.slice/foo-deadbeef.scope".
			return nil, errors.New("option --runc-systemd-cgroup requires --cgroup to be set, e.g. \"machine.slice:foo:deadbeef\"")
		}
		o.SystemdCgroup = true
	}
	return o, nil
}

// NewContainer creates the container the flags describe: from an image
// (unpacked for the snapshotter first if need be), a root filesystem
// path (--rootfs) or a spec file (--config).
func NewContainer(ctx gocontext.Context, c *client.Client, context *cli.Context) (client.Container, error) {
	id, ref, args, err := createArgs(context)
	if err != nil {
		return nil, err
	}
	runtimeOpts, err := RuntimeOptions(context)
	if err != nil {
		return nil, err
	}
	labels := commands.LabelArgs(context.StringSlice("label"))
	var (
		opts  []oci.SpecOpts
		cOpts []client.NewContainerOpts
	)
	if context.IsSet("config") {
		s, err := oci.ReadSpec(context.String("config"))
		if err != nil {
			return nil, err
		}
		cOpts = append(cOpts,
			client.WithContainerLabels(labels),
			client.WithRuntime(context.String("runtime"), runtimeOpts),
			client.WithSpec(s, oci.WithAnnotations(labels)))
		return c.NewContainer(ctx, id, cOpts...)
	}

	// The flags are checked before the image is looked at (and maybe
	// unpacked).
	flagOpts, err := flagSpecOpts(context, args, labels)
	if err != nil {
		return nil, err
	}
	// As containerd's ctr, the devices every container has.
	opts = append(opts, oci.WithDefaultUnixDevices)

	if context.Bool("rootfs") {
		rootfs, err := filepath.Abs(ref)
		if err != nil {
			return nil, err
		}
		opts = append(opts, oci.WithRootFSPath(rootfs))
		cOpts = append(cOpts, client.WithContainerLabels(labels))
	} else {
		snapshotter := context.String("snapshotter")
		rec, err := c.ImageService().Get(ctx, ref)
		if err != nil {
			return nil, err
		}
		var image client.Image
		if p := context.String("platform"); p != "" {
			platform, err := platforms.Parse(p)
			if err != nil {
				return nil, err
			}
			image = client.NewImageWithPlatform(c, rec, platforms.Only(platform))
		} else {
			image = client.NewImage(c, rec)
		}
		unpacked, err := image.IsUnpacked(ctx, snapshotter)
		if err != nil {
			return nil, err
		}
		if !unpacked {
			if err := image.Unpack(ctx, snapshotter); err != nil {
				return nil, err
			}
		}
		// The command line's labels win over the image's.
		all := map[string]string{}
		for k, v := range image.Labels() {
			all[k] = v
		}
		for k, v := range labels {
			all[k] = v
		}
		opts = append(opts, oci.WithImageConfig(image))
		cOpts = append(cOpts,
			client.WithImage(image),
			client.WithAdditionalContainerLabels(all),
			client.WithSnapshotter(snapshotter),
			client.WithNewSnapshot(id, image, snapshots.WithLabels(commands.LabelArgs(context.StringSlice("snapshotter-label")))),
			client.WithImageStopSignal(image, "SIGTERM"))
	}
	// After the image's config, so that the command line wins over the
	// image (environment, user, args).
	opts = append(opts, flagOpts...)
	cOpts = append(cOpts,
		client.WithRuntime(context.String("runtime"), runtimeOpts),
		client.WithNewSpec(opts...))
	return c.NewContainer(ctx, id, cOpts...)
}

// runtimeConfigOptions are the options, for a runtime other than runc,
// that name its config file: containerd's runtimeoptions.v1.Options,
// whose config_path is field 2.
func runtimeConfigOptions(path string) *anypb.Any {
	b := protowire.AppendTag(nil, 2, protowire.BytesType)
	b = protowire.AppendString(b, path)
	return &anypb.Any{TypeUrl: "runtimeoptions.v1.Options", Value: b}
}

// flagSpecOpts are the spec changes of the container flags (all but the
// image's and the root filesystem's), args the command if one was given.
func flagSpecOpts(context *cli.Context, args []string, labels map[string]string) ([]oci.SpecOpts, error) {
	var opts []oci.SpecOpts
	var mounts []specs.Mount
	for _, m := range context.StringSlice("mount") {
		mount, err := parseMountFlag(m)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, mount)
	}
	if len(mounts) > 0 {
		opts = append(opts, oci.WithMounts(mounts))
	}
	if ef := context.String("env-file"); ef != "" {
		opts = append(opts, oci.WithEnvFile(ef))
	}
	opts = append(opts, oci.WithEnv(context.StringSlice("env")))
	if context.Bool("read-only") {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if len(args) > 0 {
		opts = append(opts, oci.WithProcessArgs(args...))
	}
	if cwd := context.String("cwd"); cwd != "" {
		opts = append(opts, oci.WithProcessCwd(cwd))
	}
	if user := context.String("user"); user != "" {
		opts = append(opts, oci.WithUser(user), oci.WithAdditionalGIDs(user))
	}
	if context.Bool("tty") {
		opts = append(opts, oci.WithTTY)
	}
	switch privileged, noDevices := context.Bool("privileged"), context.Bool("privileged-without-host-devices"); {
	case noDevices && !privileged:
		return nil, errors.New("can't use 'privileged-without-host-devices' without 'privileged' specified")
	case noDevices:
		opts = append(opts, oci.WithPrivilegedWithoutHostDevices)
	case privileged:
		opts = append(opts, oci.WithPrivileged)
	}
	if context.Bool("net-host") {
		hostname, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("get hostname: %w", err)
		}
		opts = append(opts,
			oci.WithHostNamespace(specs.NetworkNamespace),
			oci.WithHostHostsFile,
			oci.WithHostResolvconf,
			oci.WithEnv([]string{"HOSTNAME=" + hostname}))
	}
	if a := context.StringSlice("annotation"); len(a) > 0 {
		annotations, err := annotationArgs(a)
		if err != nil {
			return nil, err
		}
		opts = append(opts, oci.WithAnnotations(annotations))
	}
	for _, flag := range []string{"cap-add", "cap-drop"} {
		caps := context.StringSlice(flag)
		for _, c := range caps {
			if !strings.HasPrefix(c, "CAP_") {
				return nil, fmt.Errorf("capabilities must be specified with 'CAP_' prefix: %q", c)
			}
		}
		if len(caps) > 0 {
			if flag == "cap-add" {
				opts = append(opts, oci.WithAddedCapabilities(caps))
			} else {
				opts = append(opts, oci.WithDroppedCapabilities(caps))
			}
		}
	}
	cpus := context.Float64("cpus")
	if cpus > 0 {
		opts = append(opts, oci.WithCPUCFS(int64(cpus*100000), 100000))
	}
	if quota, period := context.Int64("cpu-quota"), context.Uint64("cpu-period"); quota != -1 || period != 0 {
		if cpus > 0 {
			return nil, errors.New("cpus and quota/period should be used separately")
		}
		opts = append(opts, oci.WithCPUCFS(quota, period))
	}
	if context.IsSet("cpu-shares") {
		shares := context.Int("cpu-shares")
		if shares <= 0 {
			return nil, fmt.Errorf("invalid --cpu-shares %d", shares)
		}
		opts = append(opts, oci.WithCPUShares(uint64(shares)))
	}
	for _, ns := range context.StringSlice("with-ns") {
		nsType, nsPath, ok := strings.Cut(ns, ":")
		if !ok {
			return nil, errors.New("joining a Linux namespace using --with-ns requires the format 'nstype:path'")
		}
		if !validNamespace(nsType) {
			return nil, errors.New("the Linux namespace type specified in --with-ns is not valid: " + nsType)
		}
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.LinuxNamespaceType(nsType), Path: nsPath}))
	}
	if context.IsSet("allow-new-privs") {
		opts = append(opts, oci.WithNewPrivileges)
	}
	if context.IsSet("cgroup") {
		opts = append(opts, oci.WithCgroup(context.String("cgroup")))
	}
	if limit := context.Uint64("memory-limit"); limit != 0 {
		opts = append(opts, oci.WithMemoryLimit(limit))
	}
	if hostname := context.String("hostname"); hostname != "" {
		opts = append(opts, oci.WithHostname(hostname))
	}
	if cpus := context.String("cpuset-cpus"); cpus != "" {
		opts = append(opts, oci.WithCPUs(cpus))
	}
	if mems := context.String("cpuset-mems"); mems != "" {
		opts = append(opts, oci.WithCPUsMems(mems))
	}
	if r := context.String("rlimit-nofile"); r != "" {
		rlimit, err := parseRlimitNofile(r)
		if err != nil {
			return nil, err
		}
		opts = append(opts, oci.WithRlimit(rlimit))
	}
	for _, dev := range context.StringSlice("device") {
		opts = append(opts, oci.WithDevices(dev, "", "rwm"))
	}
	if p := context.String("rootfs-propagation"); p != "" {
		opts = append(opts, func(_ gocontext.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			if s.Linux == nil {
				s.Linux = &specs.Linux{}
			}
			s.Linux.RootfsPropagation = p
			return nil
		})
	}
	// As containerd's ctr, the labels are the spec's annotations too.
	opts = append(opts, oci.WithAnnotations(labels))
	return opts, nil
}

// dumpConfig writes the container's spec to path as indented JSON.
func dumpConfig(ctx gocontext.Context, container client.Container, path string) error {
	if path == "" {
		return errors.New("file name is required with --dump-config")
	}
	spec, err := container.Spec(ctx)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o666)
}
