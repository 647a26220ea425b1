// Command ctr is the daemon's command line client, with containerd's ctr
// commands, flags and output, so scripts written for containerd's keep
// working against this daemon (and this ctr against containerd's).
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli"
	"google.golang.org/grpc/grpclog"

	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands/containers"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands/content"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands/events"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands/images"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands/info"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands/leases"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands/namespaces"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands/plugins"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands/run"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands/snapshots"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands/tasks"
	versioncmd "github.com/llitfkitfk/containerd/cmd/ctr/commands/version"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/version"
)

func main() {
	// gRPC's own logging would interleave with the command's output.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, io.Discard))

	app := cli.NewApp()
	app.Name = "ctr"
	app.Version = version.Version
	app.Usage = "containerd CLI"
	app.Description = `ctr is the debug and administrative client of the daemon, with the
commands, flags and output of containerd's ctr.`
	app.EnableBashCompletion = true
	app.Flags = commands.GlobalFlags
	app.Commands = []cli.Command{
		plugins.Command,
		versioncmd.Command,
		containers.Command,
		content.Command,
		events.Command,
		images.Command,
		leases.Command,
		namespaces.Command,
		run.Command,
		snapshots.Command,
		tasks.Command,
		info.Command,
	}
	app.Before = func(c *cli.Context) error {
		if c.GlobalBool("debug") {
			return log.SetLevel("debug")
		}
		return nil
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "ctr: %s\n", err)
		os.Exit(commands.ExitCode(err))
	}
}
