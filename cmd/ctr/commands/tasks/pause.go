package tasks

import (
	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
)

var pauseCommand = cli.Command{
	Name:      "pause",
	Usage:     "Pause an existing container",
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
		return task.Pause(ctx)
	},
}

var resumeCommand = cli.Command{
	Name:      "resume",
	Usage:     "Resume a paused container",
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
		return task.Resume(ctx)
	},
}
