package leases

import "github.com/urfave/cli"

// Command is `ctr leases`.
var Command = cli.Command{
	Name:  "leases",
	Usage: "Manage leases",
	// TODO(H1b): subcommands.
}
