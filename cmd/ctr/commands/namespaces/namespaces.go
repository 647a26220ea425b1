// Package namespaces is `ctr namespaces`.
package namespaces

import (
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/errdefs"
)

// Command is `ctr namespaces`.
var Command = cli.Command{
	Name:    "namespaces",
	Aliases: []string{"namespace", "ns"},
	Usage:   "Manage namespaces",
	Subcommands: cli.Commands{
		createCommand,
		listCommand,
		removeCommand,
		setLabelsCommand,
	},
}

var createCommand = cli.Command{
	Name:        "create",
	Aliases:     []string{"c"},
	Usage:       "Create a new namespace",
	ArgsUsage:   "<name> [<key>=<value>]",
	Description: "create a new namespace. it must be unique",
	Action: func(context *cli.Context) error {
		namespace, labels := commands.ObjectWithLabelArgs(context)
		if namespace == "" {
			return errors.New("please specify a namespace")
		}
		client, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer client.Close()
		return client.NamespaceService().Create(ctx, namespace, labels)
	},
}

var setLabelsCommand = cli.Command{
	Name:        "label",
	Usage:       "Set and clear labels for a namespace",
	ArgsUsage:   "<name> [<key>=<value>, ...]",
	Description: "set and clear labels for a namespace. empty value clears the label",
	Action: func(context *cli.Context) error {
		namespace, labels := commands.ObjectWithLabelArgs(context)
		if namespace == "" {
			return errors.New("please specify a namespace")
		}
		client, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer client.Close()
		store := client.NamespaceService()
		for k, v := range labels {
			if err := store.SetLabel(ctx, namespace, k, v); err != nil {
				return err
			}
		}
		return nil
	},
}

var listCommand = cli.Command{
	Name:        "list",
	Aliases:     []string{"ls"},
	Usage:       "List namespaces",
	ArgsUsage:   "[flags]",
	Description: "list namespaces",
	Flags: []cli.Flag{
		cli.BoolFlag{
			Name:  "quiet, q",
			Usage: "Print only the namespace name",
		},
	},
	Action: func(context *cli.Context) error {
		client, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer client.Close()
		store := client.NamespaceService()
		names, err := store.List(ctx)
		if err != nil {
			return err
		}
		if context.Bool("quiet") {
			for _, name := range names {
				fmt.Fprintln(commands.Stdout, name)
			}
			return nil
		}
		tw := tabwriter.NewWriter(commands.Stdout, 1, 8, 1, ' ', 0)
		fmt.Fprintln(tw, "NAME\tLABELS\t")
		for _, name := range names {
			labels, err := store.Labels(ctx, name)
			if err != nil {
				if errdefs.IsNotFound(err) {
					continue // removed since the listing
				}
				return err
			}
			fmt.Fprintf(tw, "%v\t%v\t\n", name, commands.FormatLabels(labels))
		}
		return tw.Flush()
	},
}

var removeCommand = cli.Command{
	Name:        "remove",
	Aliases:     []string{"rm"},
	Usage:       "Remove one or more namespaces",
	ArgsUsage:   "<name> [<name>, ...]",
	Description: "remove one or more namespaces. for now, the namespace must be empty",
	Flags: []cli.Flag{
		cli.BoolFlag{
			Name:  "cgroup, c",
			Usage: "Delete the namespace's cgroup",
		},
	},
	Action: func(context *cli.Context) error {
		client, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer client.Close()
		store := client.NamespaceService()
		var exitErr error
		for _, name := range context.Args() {
			if err := store.Delete(ctx, name); err != nil && !errdefs.IsNotFound(err) {
				if exitErr == nil {
					exitErr = fmt.Errorf("unable to delete %v: %w", name, err)
				}
				fmt.Fprintf(os.Stderr, "unable to delete %v: %v\n", name, err)
				continue
			}
			if context.Bool("cgroup") {
				if err := deleteCgroup(name); err != nil {
					if exitErr == nil {
						exitErr = err
					}
					fmt.Fprintln(os.Stderr, err)
					continue
				}
			}
			fmt.Fprintln(commands.Stdout, name)
		}
		return exitErr
	},
}
