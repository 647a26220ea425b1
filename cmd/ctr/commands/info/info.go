package info

import "github.com/urfave/cli"

// Command is `ctr info`.
var Command = cli.Command{
	Name:  "info",
	Usage: "Print the server info",
	// TODO(H1b): subcommands.
}
