package tasks

import "github.com/urfave/cli"

// Command is `ctr tasks`.
var Command = cli.Command{
	Name:  "tasks",
	Usage: "Manage tasks",
	// TODO(H3b): subcommands.
}
