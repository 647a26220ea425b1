package tasks

import (
	"errors"

	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/cio"
	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/log"
)

var deleteCommand = cli.Command{
	Name:      "delete",
	Usage:     "Delete one or more tasks",
	ArgsUsage: "CONTAINER [CONTAINER, ...]",
	Aliases:   []string{"del", "remove", "rm"},
	Flags: []cli.Flag{
		cli.BoolFlag{
			Name:  "force, f",
			Usage: "Force delete task process",
		},
		cli.StringFlag{
			Name:  "exec-id",
			Usage: "Process ID to kill",
		},
	},
	Action: func(context *cli.Context) error {
		if context.NArg() == 0 {
			return errors.New("container id must be provided")
		}
		var opts []client.ProcessDeleteOpts
		if context.Bool("force") {
			opts = append(opts, client.WithProcessKill)
		}
		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()
		if execID := context.String("exec-id"); execID != "" {
			task, err := loadTask(ctx, c, context.Args().First(), nil)
			if err != nil {
				return err
			}
			p, err := task.LoadProcess(ctx, execID, nil)
			if err != nil {
				return err
			}
			status, err := p.Delete(ctx, opts...)
			if err != nil {
				return err
			}
			return exitError(status.ExitCode())
		}
		// Every task named is tried; the first failure is the result.
		var exitErr error
		for _, id := range context.Args() {
			task, err := loadTask(ctx, c, id, cio.Load)
			if err == nil {
				var status *client.ExitStatus
				if status, err = task.Delete(ctx, opts...); err == nil {
					if code := status.ExitCode(); code != 0 {
						log.GetLogger(ctx).Warnf("task %v exit with non-zero exit code %v", id, code)
					}
					continue
				}
			}
			if exitErr == nil {
				exitErr = err
			}
			log.GetLogger(ctx).WithError(err).Errorf("unable to delete %v", id)
		}
		return exitErr
	},
}
