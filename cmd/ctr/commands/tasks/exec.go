package tasks

import (
	"errors"

	"github.com/containerd/console"
	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/oci"
)

var execCommand = cli.Command{
	Name:           "exec",
	Usage:          "Execute additional processes in an existing container",
	ArgsUsage:      "[flags] CONTAINER CMD [ARG...]",
	SkipArgReorder: true,
	Flags: []cli.Flag{
		cli.StringFlag{
			Name:  "cwd",
			Usage: "Working directory of the new process",
		},
		cli.BoolFlag{
			Name:  "tty, t",
			Usage: "Allocate a TTY for the container",
		},
		cli.BoolFlag{
			Name:  "detach, d",
			Usage: "Detach from the task after it has started execution",
		},
		cli.StringFlag{
			Name:     "exec-id",
			Required: true,
			Usage:    "Exec specific id for the process",
		},
		cli.StringFlag{
			Name:  "fifo-dir",
			Usage: "Directory used for storing IO FIFOs",
		},
		cli.StringFlag{
			Name:  "log-uri",
			Usage: "Log uri for custom shim logging",
		},
		cli.StringFlag{
			Name:  "user",
			Usage: "User id or name",
		},
		cli.StringSliceFlag{
			Name:  "env",
			Usage: "Specify additional environment variables for the process (e.g. FOO=bar)",
		},
	},
	Action: func(context *cli.Context) error {
		id := context.Args().First()
		args := commandArgs(context.Args().Tail())
		tty, detach := context.Bool("tty"), context.Bool("detach")
		execID := context.String("exec-id")
		switch {
		case id == "":
			return errors.New("container id must be provided")
		case len(args) == 0:
			return errors.New("command must be provided")
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
		if user := context.String("user"); user != "" {
			info, err := container.Info(ctx)
			if err != nil {
				return err
			}
			if err := oci.WithUser(user)(ctx, c, &info, spec); err != nil {
				return err
			}
		}
		if spec.Process == nil {
			return errors.New("the container's spec has no process")
		}
		pspec := spec.Process
		pspec.Terminal = tty
		pspec.Args = args
		if cwd := context.String("cwd"); cwd != "" {
			pspec.Cwd = cwd
		}
		if env := context.StringSlice("env"); len(env) > 0 {
			pspec.Env = oci.MergeEnv(pspec.Env, env)
		}
		task, err := container.Task(ctx, nil)
		if err != nil {
			return err
		}
		var con console.Console
		if tty {
			var err error
			if con, err = RawConsole(); err != nil {
				return err
			}
			defer con.Reset()
		}
		ioCreator, stdin, err := IOOptions{Console: con, LogURI: context.String("log-uri"), FIFODir: context.String("fifo-dir")}.creator()
		if err != nil {
			return err
		}
		process, err := task.Exec(ctx, execID, pspec, ioCreator)
		if err != nil {
			return err
		}
		stdin.setCloser(func() { process.CloseIO(ctx, client.WithStdinCloser) })
		if !detach {
			defer process.Delete(ctx)
		}
		// Asked for before the start, so a fast exit is not missed.
		statusC, err := process.Wait(ctx)
		if err != nil {
			return err
		}
		if err := process.Start(ctx); err != nil {
			return err
		}
		if detach {
			return nil
		}
		if tty {
			if err := HandleConsoleResize(ctx, process, con); err != nil {
				log.GetLogger(ctx).WithError(err).Error("console resize")
			}
		} else {
			sigc := commands.ForwardAllSignals(ctx, process)
			defer commands.StopCatch(sigc)
		}
		status := <-statusC
		code, _, err := status.Result()
		if err != nil {
			return err
		}
		// All the output is written before ctr exits.
		process.IO().Wait()
		return exitError(code)
	},
}

// commandArgs drops the "--" that may separate a command from ctr's own
// arguments.
func commandArgs(args []string) []string {
	if len(args) > 0 && args[0] == "--" {
		return args[1:]
	}
	return args
}
