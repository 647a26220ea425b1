package tasks

import (
	"github.com/containerd/console"
	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/cio"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/log"
)

var attachCommand = cli.Command{
	Name:      "attach",
	Usage:     "Attach to the IO of a running container",
	ArgsUsage: "CONTAINER",
	Action: func(context *cli.Context) error {
		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()
		container, err := c.LoadContainer(ctx, context.Args().First())
		if err != nil {
			return err
		}
		spec, err := container.Spec(ctx)
		if err != nil {
			return err
		}
		var con console.Console
		tty := spec.Process != nil && spec.Process.Terminal
		if tty {
			var err error
			if con, err = RawConsole(); err != nil {
				return err
			}
			defer con.Reset()
		}
		task, err := container.Task(ctx, cio.NewAttach(cio.WithStdio))
		if err != nil {
			return err
		}
		defer task.Delete(ctx)
		statusC, err := task.Wait(ctx)
		if err != nil {
			return err
		}
		if tty {
			if err := HandleConsoleResize(ctx, task, con); err != nil {
				log.GetLogger(ctx).WithError(err).Error("console resize")
			}
		} else {
			sigc := commands.ForwardAllSignals(ctx, task)
			defer commands.StopCatch(sigc)
		}
		status := <-statusC
		code, _, err := status.Result()
		if err != nil {
			return err
		}
		return exitError(code)
	},
}
