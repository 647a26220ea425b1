// Package snapshots is `ctr snapshots`: one snapshotter's snapshots, in
// the namespace of --namespace.
package snapshots

import (
	gocontext "context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/snapshots"
)

// Command is `ctr snapshots`.
var Command = cli.Command{
	Name:    "snapshots",
	Aliases: []string{"snapshot"},
	Usage:   "Manage snapshots",
	Flags: []cli.Flag{
		cli.StringFlag{
			Name:   "snapshotter",
			Usage:  "Snapshotter name. Empty value stands for the default value.",
			Value:  client.DefaultSnapshotter,
			EnvVar: "CONTAINERD_SNAPSHOTTER",
		},
	},
	Subcommands: cli.Commands{
		commitCommand,
		diffCommand,
		infoCommand,
		listCommand,
		mountCommand,
		prepareCommand,
		removeCommand,
		setLabelCommand,
		treeCommand,
		usageCommand,
		viewCommand,
	},
}

// gcRootLabel marks what ctr makes by hand (prepare, commit) as a root of
// garbage collection, as containerd's ctr does: nothing else refers to it.
func gcRootLabel() snapshots.Opt {
	return snapshots.WithLabels(map[string]string{
		"containerd.io/gc.root": time.Now().UTC().Format(time.RFC3339),
	})
}

// withSnapshotter connects and calls fn with the snapshotter that
// --snapshotter names; the flag is the parent command's, which
// GlobalString finds.
func withSnapshotter(context *cli.Context, fn func(ctx gocontext.Context, sn snapshots.Snapshotter) error) error {
	c, ctx, cancel, err := commands.NewClient(context)
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close()
	return fn(ctx, c.SnapshotService(context.GlobalString("snapshotter")))
}

var listCommand = cli.Command{
	Name:    "list",
	Aliases: []string{"ls"},
	Usage:   "List snapshots",
	Action: func(context *cli.Context) error {
		return withSnapshotter(context, func(ctx gocontext.Context, sn snapshots.Snapshotter) error {
			tw := tabwriter.NewWriter(commands.Stdout, 1, 8, 1, ' ', 0)
			fmt.Fprintln(tw, "KEY\tPARENT\tKIND\t")
			if err := sn.Walk(ctx, func(_ gocontext.Context, info snapshots.Info) error {
				_, err := fmt.Fprintf(tw, "%v\t%v\t%v\t\n", info.Name, info.Parent, info.Kind)
				return err
			}, context.Args()...); err != nil {
				return err
			}
			return tw.Flush()
		})
	},
}

var usageCommand = cli.Command{
	Name:      "usage",
	Usage:     "Usage snapshots",
	ArgsUsage: "[flags] [<key>, ...]",
	Flags: []cli.Flag{
		cli.BoolFlag{
			Name:  "b",
			Usage: "Display size in bytes",
		},
	},
	Action: func(context *cli.Context) error {
		displaySize := commands.HumanBytes
		if context.Bool("b") {
			displaySize = func(s int64) string { return strconv.FormatInt(s, 10) }
		}
		return withSnapshotter(context, func(ctx gocontext.Context, sn snapshots.Snapshotter) error {
			tw := tabwriter.NewWriter(commands.Stdout, 1, 8, 1, ' ', 0)
			fmt.Fprintln(tw, "KEY\tSIZE\tINODES\t")
			print := func(key string) error {
				usage, err := sn.Usage(ctx, key)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(tw, "%v\t%s\t%d\t\n", key, displaySize(usage.Size), usage.Inodes)
				return err
			}
			if context.NArg() == 0 {
				if err := sn.Walk(ctx, func(ctx gocontext.Context, info snapshots.Info) error {
					return print(info.Name)
				}); err != nil {
					return err
				}
			}
			for _, key := range context.Args() {
				if err := print(key); err != nil {
					return err
				}
			}
			return tw.Flush()
		})
	},
}

var removeCommand = cli.Command{
	Name:      "delete",
	Aliases:   []string{"del", "remove", "rm"},
	ArgsUsage: "<key> [<key>, ...]",
	Usage:     "Remove snapshots",
	Action: func(context *cli.Context) error {
		return withSnapshotter(context, func(ctx gocontext.Context, sn snapshots.Snapshotter) error {
			for _, key := range context.Args() {
				if err := sn.Remove(ctx, key); err != nil {
					return fmt.Errorf("failed to remove %q: %w", key, err)
				}
			}
			return nil
		})
	},
}

// makeCommand is prepare or view: both make a snapshot key on parent and
// can print its mounts.
func makeCommand(name, usage string, view bool) cli.Command {
	return cli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: "[flags] <key> [<parent>]",
		Flags: []cli.Flag{
			cli.StringFlag{
				Name:  "target, t",
				Usage: "Mount target path, will print mount, if provided",
			},
			cli.BoolFlag{
				Name:  "mounts",
				Usage: "Print out snapshot mounts as JSON",
			},
		},
		Action: func(context *cli.Context) error {
			if narg := context.NArg(); narg < 1 || narg > 2 {
				return cli.ShowSubcommandHelp(context)
			}
			key, parent := context.Args().Get(0), context.Args().Get(1)
			return withSnapshotter(context, func(ctx gocontext.Context, sn snapshots.Snapshotter) error {
				var (
					mounts []mount.Mount
					err    error
				)
				if view {
					mounts, err = sn.View(ctx, key, parent)
				} else {
					mounts, err = sn.Prepare(ctx, key, parent, gcRootLabel())
				}
				if err != nil {
					return err
				}
				if target := context.String("target"); target != "" {
					printMounts(target, mounts)
				}
				if context.Bool("mounts") {
					return commands.PrintAsJSON(mounts)
				}
				return nil
			})
		},
	}
}

var (
	prepareCommand = makeCommand("prepare", "Prepare a snapshot from a committed snapshot", false)
	viewCommand    = makeCommand("view", "Create a read-only snapshot from a committed snapshot", true)
)

var mountCommand = cli.Command{
	Name:      "mounts",
	Aliases:   []string{"m", "mount"},
	Usage:     "Mount gets mount commands for the snapshots",
	ArgsUsage: "<target> <key>",
	Action: func(context *cli.Context) error {
		if context.NArg() != 2 {
			return cli.ShowSubcommandHelp(context)
		}
		target, key := context.Args().Get(0), context.Args().Get(1)
		return withSnapshotter(context, func(ctx gocontext.Context, sn snapshots.Snapshotter) error {
			mounts, err := sn.Mounts(ctx, key)
			if err != nil {
				return err
			}
			printMounts(target, mounts)
			return nil
		})
	},
}

var commitCommand = cli.Command{
	Name:      "commit",
	Usage:     "Commit an active snapshot into the provided name",
	ArgsUsage: "<key> <active>",
	Action: func(context *cli.Context) error {
		if context.NArg() != 2 {
			return cli.ShowSubcommandHelp(context)
		}
		name, active := context.Args().Get(0), context.Args().Get(1)
		return withSnapshotter(context, func(ctx gocontext.Context, sn snapshots.Snapshotter) error {
			return sn.Commit(ctx, name, active, gcRootLabel())
		})
	},
}

var treeCommand = cli.Command{
	Name:  "tree",
	Usage: "Display tree view of snapshot branches",
	Action: func(context *cli.Context) error {
		return withSnapshotter(context, func(ctx gocontext.Context, sn snapshots.Snapshotter) error {
			tree := newSnapshotTree()
			if err := sn.Walk(ctx, func(_ gocontext.Context, info snapshots.Info) error {
				tree.add(info)
				return nil
			}); err != nil {
				return err
			}
			tree.print(func(line string) { fmt.Fprintln(commands.Stdout, line) })
			return nil
		})
	},
}

var infoCommand = cli.Command{
	Name:      "info",
	Usage:     "Get info about a snapshot",
	ArgsUsage: "<key>",
	Action: func(context *cli.Context) error {
		if context.NArg() != 1 {
			return cli.ShowSubcommandHelp(context)
		}
		return withSnapshotter(context, func(ctx gocontext.Context, sn snapshots.Snapshotter) error {
			info, err := sn.Stat(ctx, context.Args().First())
			if err != nil {
				return err
			}
			return commands.PrintAsJSON(info)
		})
	},
}

var setLabelCommand = cli.Command{
	Name:        "label",
	Usage:       "Add labels to content",
	ArgsUsage:   "<name> [<label>=<value> ...]",
	Description: "labels snapshots in the snapshotter; an empty value removes a label",
	Action: func(context *cli.Context) error {
		key, labels := commands.ObjectWithLabelArgs(context)
		if key == "" {
			return errors.New("a snapshot key is required")
		}
		return withSnapshotter(context, func(ctx gocontext.Context, sn snapshots.Snapshotter) error {
			info := snapshots.Info{Name: key, Labels: map[string]string{}}
			var paths []string
			for k, v := range labels {
				paths = append(paths, "labels."+k)
				if v != "" {
					info.Labels[k] = v
				}
			}
			var err error
			// With no labels given, print the snapshot's; an update
			// without field paths would clear them all.
			if len(paths) == 0 {
				info, err = sn.Stat(ctx, key)
			} else {
				info, err = sn.Update(ctx, info, paths...)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(commands.Stdout, commands.FormatLabels(info.Labels))
			return nil
		})
	},
}

// printMounts prints a mount(8) command line per mount, onto target, as
// containerd's ctr does; a shell can run them as they are.
func printMounts(target string, mounts []mount.Mount) {
	for _, m := range mounts {
		fmt.Fprintln(commands.Stdout, mountCommandLine(target, m))
	}
}

func mountCommandLine(target string, m mount.Mount) string {
	var opts string
	if len(m.Options) > 0 {
		opts = " -o " + strings.Join(m.Options, ",")
	}
	return fmt.Sprintf("mount -t %s %s %s%s", m.Type, m.Source, filepath.Join(target, m.Target), opts)
}
