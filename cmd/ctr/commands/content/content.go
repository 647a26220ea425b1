package content

import "github.com/urfave/cli"

// Command is `ctr content`.
var Command = cli.Command{
	Name:  "content",
	Usage: "Manage content",
	// TODO(H1b): subcommands.
}
