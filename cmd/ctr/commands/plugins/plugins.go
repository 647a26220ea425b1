package plugins

import "github.com/urfave/cli"

// Command is `ctr plugins`.
var Command = cli.Command{
	Name:  "plugins",
	Usage: "Provides information about containerd plugins",
	// TODO(H1b): subcommands.
}
