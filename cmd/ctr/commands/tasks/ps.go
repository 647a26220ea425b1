package tasks

import (
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/api/types/runc/options"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
)

var psCommand = cli.Command{
	Name:      "ps",
	Usage:     "List processes for container",
	ArgsUsage: "CONTAINER",
	Action: func(context *cli.Context) error {
		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()
		task, err := loadTask(ctx, c, context.Args().First(), nil)
		if err != nil {
			return err
		}
		processes, err := task.Pids(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(commands.Stdout, 1, 8, 4, ' ', 0)
		fmt.Fprintln(w, "PID\tINFO")
		for _, p := range processes {
			// As containerd's ctr, the runtime's details of an exec'd
			// process, "-" for others.
			var info interface{} = "-"
			if p.ExecID != "" {
				info = &options.ProcessDetails{ExecId: p.ExecID}
			}
			fmt.Fprintf(w, "%d\t%+v\n", p.Pid, info)
		}
		return w.Flush()
	},
}
