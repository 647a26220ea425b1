package snapshots

import "github.com/urfave/cli"

// Command is `ctr snapshots`.
var Command = cli.Command{
	Name:  "snapshots",
	Usage: "Manage snapshots",
	// TODO(H1b): subcommands.
}
