package run

import "github.com/urfave/cli"

// Command is `ctr run`.
var Command = cli.Command{
	Name:  "run",
	Usage: "Run a container",
	// TODO(H3b): subcommands.
}
