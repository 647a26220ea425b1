package tasks

import (
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli"

	tasksapi "github.com/llitfkitfk/containerd/api/services/tasks/v1"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/errdefs"
)

var listCommand = cli.Command{
	Name:      "list",
	Usage:     "List tasks",
	Aliases:   []string{"ls"},
	ArgsUsage: "[flags]",
	Flags: []cli.Flag{
		cli.BoolFlag{
			Name:  "quiet, q",
			Usage: "Print only the task id",
		},
	},
	Action: func(context *cli.Context) error {
		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()
		resp, err := c.TaskService().List(ctx, &tasksapi.ListTasksRequest{})
		if err != nil {
			return errdefs.FromGRPC(err)
		}
		if context.Bool("quiet") {
			for _, t := range resp.GetTasks() {
				fmt.Fprintln(commands.Stdout, t.GetId())
			}
			return nil
		}
		w := tabwriter.NewWriter(commands.Stdout, 4, 8, 4, ' ', 0)
		fmt.Fprintln(w, "TASK\tPID\tSTATUS\t")
		for _, t := range resp.GetTasks() {
			fmt.Fprintf(w, "%s\t%d\t%s\n", t.GetId(), t.GetPid(), t.GetStatus().String())
		}
		return w.Flush()
	},
}
