package containers

import "github.com/urfave/cli"

// Command is `ctr containers`.
var Command = cli.Command{
	Name:  "containers",
	Usage: "Manage containers",
	// TODO(H3b): subcommands.
}
