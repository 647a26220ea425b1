// Package containers is `ctr containers`: create, list, inspect, label
// and delete container records.
package containers

import (
	gocontext "context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/cio"
	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands/run"
	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/log"
)

// Command is `ctr containers`.
var Command = cli.Command{
	Name:    "containers",
	Usage:   "Manage containers",
	Aliases: []string{"c", "container"},
	Subcommands: []cli.Command{
		createCommand,
		deleteCommand,
		infoCommand,
		listCommand,
		setLabelsCommand,
	},
}

var createCommand = cli.Command{
	Name:      "create",
	Usage:     "Create container",
	ArgsUsage: "[flags] Image|RootFS CONTAINER [COMMAND] [ARG...]",
	// The command's own flags (sh -c) are not ctr's.
	SkipArgReorder: true,
	Flags:          run.CreateFlags,
	Action: func(context *cli.Context) error {
		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()
		_, err = run.NewContainer(ctx, c, context)
		return err
	},
}

var listCommand = cli.Command{
	Name:      "list",
	Aliases:   []string{"ls"},
	Usage:     "List containers",
	ArgsUsage: "[flags] [<filter>, ...]",
	Flags: []cli.Flag{
		cli.BoolFlag{
			Name:  "quiet, q",
			Usage: "Print only the container id",
		},
	},
	Action: func(context *cli.Context) error {
		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()
		// The records are listed at once, rather than one Get each.
		recs, err := c.ContainerService().List(ctx, context.Args()...)
		if err != nil {
			return err
		}
		if context.Bool("quiet") {
			for _, r := range recs {
				fmt.Fprintln(commands.Stdout, r.ID)
			}
			return nil
		}
		w := tabwriter.NewWriter(commands.Stdout, 4, 8, 4, ' ', 0)
		fmt.Fprintln(w, "CONTAINER\tIMAGE\tRUNTIME\t")
		for _, r := range recs {
			image := r.Image
			if image == "" {
				image = "-"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t\n", r.ID, image, r.Runtime.Name)
		}
		return w.Flush()
	},
}

var deleteCommand = cli.Command{
	Name:      "delete",
	Usage:     "Delete one or more existing containers",
	ArgsUsage: "[flags] CONTAINER [CONTAINER, ...]",
	Aliases:   []string{"del", "remove", "rm"},
	Flags: []cli.Flag{
		cli.BoolFlag{
			Name:  "keep-snapshot",
			Usage: "Do not clean up snapshot with container",
		},
	},
	Action: func(context *cli.Context) error {
		if context.NArg() == 0 {
			return errors.New("must specify at least one container to delete")
		}
		var opts []client.DeleteOpts
		if !context.Bool("keep-snapshot") {
			opts = append(opts, client.WithSnapshotCleanup)
		}
		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()
		// Every container named is tried; the first failure is the
		// result.
		var exitErr error
		for _, id := range context.Args() {
			if err := deleteContainer(ctx, c, id, opts...); err != nil {
				if exitErr == nil {
					exitErr = err
				}
				log.GetLogger(ctx).WithError(err).Errorf("failed to delete container %q", id)
			}
		}
		return exitErr
	},
}

// deleteContainer deletes container id and its stopped (or never
// started) task; a running task is left, and the container too.
func deleteContainer(ctx gocontext.Context, c *client.Client, id string, opts ...client.DeleteOpts) error {
	container, err := c.LoadContainer(ctx, id)
	if err != nil {
		return err
	}
	// Loaded with its fifos, so that deleting it removes those a
	// detached ctr left.
	task, err := container.Task(ctx, cio.Load)
	if err != nil {
		return container.Delete(ctx, opts...)
	}
	status, err := task.Status(ctx)
	if err != nil {
		return err
	}
	if status.Status != client.Stopped && status.Status != client.Created {
		return fmt.Errorf("cannot delete a non stopped container: %v", status)
	}
	if _, err := task.Delete(ctx); err != nil {
		return err
	}
	return container.Delete(ctx, opts...)
}

var setLabelsCommand = cli.Command{
	Name:        "label",
	Usage:       "Set and clear labels for a container",
	ArgsUsage:   "[flags] CONTAINER [<key>=<value>, ...]",
	Description: "set and clear labels for a container",
	Action: func(context *cli.Context) error {
		id := context.Args().First()
		if id == "" {
			return errors.New("container id must be provided")
		}
		labels := map[string]string{}
		for _, a := range context.Args().Tail() {
			// "key" alone (or "key=") clears the label.
			k, v, _ := strings.Cut(a, "=")
			if k == "" {
				return fmt.Errorf("invalid label %q: no key", a)
			}
			labels[k] = v
		}
		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()
		container, err := c.LoadContainer(ctx, id)
		if err != nil {
			return err
		}
		set, err := container.SetLabels(ctx, labels)
		if err != nil {
			return err
		}
		pairs := make([]string, 0, len(set))
		for k, v := range set {
			pairs = append(pairs, k+"="+v)
		}
		sort.Strings(pairs)
		fmt.Fprintln(commands.Stdout, strings.Join(pairs, ","))
		return nil
	},
}

var infoCommand = cli.Command{
	Name:      "info",
	Usage:     "Get info about a container",
	ArgsUsage: "CONTAINER",
	Flags: []cli.Flag{
		cli.BoolFlag{
			Name:  "spec",
			Usage: "Only display the spec",
		},
	},
	Action: func(context *cli.Context) error {
		id := context.Args().First()
		if id == "" {
			return errors.New("container id must be provided")
		}
		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()
		container, err := c.LoadContainer(ctx, id)
		if err != nil {
			return err
		}
		info, err := container.Info(ctx)
		if err != nil {
			return err
		}
		v, err := infoJSON(info, context.Bool("spec"))
		if err != nil {
			return err
		}
		b, err := json.MarshalIndent(v, "", "    ")
		if err != nil {
			return err
		}
		fmt.Fprintln(commands.Stdout, string(b))
		return nil
	},
}

// infoJSON is what `containers info` prints: the record, with its spec
// decoded from the Any (or the spec alone).
func infoJSON(info containers.Container, specOnly bool) (interface{}, error) {
	var spec interface{}
	if v := info.Spec.GetValue(); len(v) > 0 {
		var s json.RawMessage
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("spec of container %s (%s): %w", info.ID, info.Spec.GetTypeUrl(), err)
		}
		spec = s
	}
	if specOnly {
		return spec, nil
	}
	if spec == nil {
		return info, nil
	}
	return struct {
		containers.Container
		Spec interface{} `json:"Spec,omitempty"`
	}{info, spec}, nil
}
