package tasks

import (
	"errors"
	"syscall"

	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
)

var killCommand = cli.Command{
	Name:      "kill",
	Usage:     "Signal a container (default: SIGTERM)",
	ArgsUsage: "[flags] CONTAINER",
	Flags: []cli.Flag{
		cli.StringFlag{
			Name:  "signal, s",
			Usage: "Signal to send to the container",
		},
		cli.StringFlag{
			Name:  "exec-id",
			Usage: "Process ID to kill",
		},
		cli.BoolFlag{
			Name:  "all, a",
			Usage: "Send signal to all processes inside the container",
		},
	},
	Action: func(context *cli.Context) error {
		id := context.Args().First()
		if id == "" {
			return errors.New("container id must be provided")
		}
		all, execID := context.Bool("all"), context.String("exec-id")
		if all && execID != "" {
			return errors.New("specify an exec-id or all; not both")
		}
		var opts []client.KillOpts
		if all {
			opts = append(opts, client.WithKillAll)
		}
		if execID != "" {
			opts = append(opts, client.WithKillExecID(execID))
		}
		// A bad signal is refused before anything is asked of the daemon.
		var sig syscall.Signal
		if s := context.String("signal"); s != "" {
			var err error
			if sig, err = client.ParseSignal(s); err != nil {
				return err
			}
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
		if sig == 0 {
			// The image's stop signal, else SIGTERM.
			if sig, err = client.GetStopSignal(ctx, container, syscall.SIGTERM); err != nil {
				return err
			}
		}
		task, err := container.Task(ctx, nil)
		if err != nil {
			return err
		}
		return task.Kill(ctx, sig, opts...)
	},
}
