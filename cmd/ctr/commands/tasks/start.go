package tasks

import (
	gocontext "context"
	"errors"

	"github.com/containerd/console"
	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
)

// StartFlags are the stdio and pid file flags of `ctr tasks start`,
// shared by `ctr run`.
var StartFlags = []cli.Flag{
	cli.BoolFlag{
		Name:  "null-io",
		Usage: "Send all IO to /dev/null",
	},
	cli.StringFlag{
		Name:  "log-uri",
		Usage: "Log uri",
	},
	cli.StringFlag{
		Name:  "fifo-dir",
		Usage: "Directory used for storing IO FIFOs",
	},
}

var startCommand = cli.Command{
	Name:      "start",
	Usage:     "Start a container that has been created",
	ArgsUsage: "CONTAINER",
	Flags: append(append([]cli.Flag{
		cli.BoolFlag{
			Name:  "no-pivot",
			Usage: "Disable use of pivot-root (linux only)",
		},
	}, StartFlags...),
		cli.StringFlag{
			Name:  "pid-file",
			Usage: "File path to write the task's pid",
		},
		cli.BoolFlag{
			Name:  "detach, d",
			Usage: "Detach from the task after it has started execution",
		},
	),
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
		spec, err := container.Spec(ctx)
		if err != nil {
			return err
		}
		var con console.Console
		if spec.Process != nil && spec.Process.Terminal {
			var err error
			if con, err = RawConsole(); err != nil {
				return err
			}
			defer con.Reset()
		}
		task, err := NewTask(ctx, container, IOOptionsOf(context, con), NewTaskOpts(context)...)
		if err != nil {
			return err
		}
		return RunTask(ctx, context, task, con)
	},
}

// IOOptionsOf reads the stdio flags.
func IOOptionsOf(context *cli.Context, con console.Console) IOOptions {
	return IOOptions{
		Console: con,
		NullIO:  context.Bool("null-io"),
		LogURI:  context.String("log-uri"),
		FIFODir: context.String("fifo-dir"),
	}
}

// RunTask starts the created task and, unless --detach, waits for it,
// forwarding signals (or, with a terminal, its size) and deleting it
// afterwards; the error carries the task's exit code.
func RunTask(ctx gocontext.Context, context *cli.Context, task client.Task, con console.Console) error {
	detach := context.Bool("detach")
	var statusC <-chan client.ExitStatus
	deleted := false
	if !detach {
		// Whatever fails from here, the task does not outlive ctr.
		defer func() {
			if deleted {
				return
			}
			if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
				log.GetLogger(ctx).WithError(err).Error("failed to cleanup task")
			}
		}()
		// Asked for before the start, so a fast exit is not missed.
		var err error
		if statusC, err = task.Wait(ctx); err != nil {
			return err
		}
	}
	if context.IsSet("pid-file") {
		if err := commands.WritePidFile(context.String("pid-file"), int(task.Pid())); err != nil {
			return err
		}
	}
	if err := task.Start(ctx); err != nil {
		return err
	}
	if detach {
		return nil
	}
	if con != nil {
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
	if _, err := task.Delete(ctx); err != nil {
		return err
	}
	deleted = true
	return exitError(code)
}
